"""Models as OCI artifacts (CNCF ModelPack) through the registry HTTP API."""
