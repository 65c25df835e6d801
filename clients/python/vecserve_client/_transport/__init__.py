"""What sits between the clients and the network: retries around httpx's transports."""

from vecserve_client._transport._retry import (
    RETRIED,
    RETRY_EXTENSION,
    AsyncRetryTransport,
    Retries,
    RetryTransport,
)

__all__ = ["RETRIED", "RETRY_EXTENSION", "AsyncRetryTransport", "Retries", "RetryTransport"]
