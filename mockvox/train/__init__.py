"""Lightning modules, callbacks, MLflow glue and the training entry point."""
