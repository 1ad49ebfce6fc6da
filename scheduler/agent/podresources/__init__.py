"""The kubelet pod-resources API (v1): which devices each container was really given.

`api.proto` is the upstream API (see its header); `api_pb2*.py` are generated from it with
`make podresources` and committed. `client` is the only module the agent uses.
"""
