"""Running the Lambdas' code as one local system: `make dev` and the test suite."""
