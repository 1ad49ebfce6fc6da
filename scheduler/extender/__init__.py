"""The HTTP scheduler extender: kube-scheduler's filter/prioritize/bind/preempt over aiohttp.

Owns: the wire format (`wire`), the HTTP routes (`app`), metrics, the `--state-file` journal and
the service that serialises engine calls. Must not know placement rules: it decodes, calls
`scheduler.core`, encodes.
"""
