"""Our cluster configuration (plugin_config/) and its idempotent installer."""
