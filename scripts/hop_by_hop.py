"""What the testbed's two layers (scripts/ecr-layer.py, scripts/ecr-api-layer.py) leave out when
they pass headers on: the hop-by-hop headers of RFC 9110 7.6.1, which belong to one connection,
and `content-length`, which each sets itself from the body it sends.

Both layers run as scripts from this folder, so Python finds this module beside them; it needs
the standard library only (the ECR API layer runs on the system's python3)."""

HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "content-length",
    }
)


def end_to_end(headers):
    """The `(name, value)` pairs of `headers` (pairs, e.g. `.items()`) that are passed on."""
    return [(name, value) for name, value in headers if name.lower() not in HOP_BY_HOP]
