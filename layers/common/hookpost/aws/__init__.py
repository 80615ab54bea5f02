"""What only the AWS deployment needs: secrets, the API Gateway usage keys and authorizer, the
migration custom resource and waking the deliver function. Each part acts only where the
template's environment names its AWS resource, so `make dev` and the tests never reach AWS."""
