"""Deployment targets: local, docker, kubernetes, iotedge (see ``base.Target``)."""
