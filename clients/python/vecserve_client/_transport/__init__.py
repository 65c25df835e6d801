"""What sits between the clients and the network: retries around httpx's transports."""

from vecserve_client._transport._async_retry import AsyncRetryTransport
from vecserve_client._transport._policy import RETRIED, RETRY_EXTENSION, Retries
from vecserve_client._transport._retry import RetryTransport

__all__ = ["RETRIED", "RETRY_EXTENSION", "AsyncRetryTransport", "Retries", "RetryTransport"]
