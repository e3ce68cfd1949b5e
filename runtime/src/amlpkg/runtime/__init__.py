"""The scoring server: ONNX Runtime behind the KServe v2 / Open Inference Protocol.

Imports nothing else of amlpkg but :mod:`amlpkg.errors`, so a scoring image
installs ``amlpkg[runtime]`` and nothing for training, Docker or Kubernetes.
"""
