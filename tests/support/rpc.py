"""Reading rich gRPC errors in tests."""

from __future__ import annotations

from dataclasses import dataclass

import grpc
from google.rpc import error_details_pb2
from grpc_status import rpc_status


@dataclass(frozen=True)
class Failure:
    """Everything a caller can see of a failed call."""

    code: grpc.StatusCode
    message: str
    reason: str
    domain: str
    violations: tuple[tuple[str, str], ...]
    retry_delay_ms: int | None
    details: tuple[bytes, ...]
    trailers: tuple[tuple[str, str | bytes], ...]


def failure(error: grpc.RpcError) -> Failure:
    """Parse the google.rpc.Status of a failed call."""
    assert isinstance(error, grpc.Call)
    status = rpc_status.from_call(error)
    assert status is not None, f"no rich status on {error.code()}: {error.details()}"
    reason = domain = ""
    violations: list[tuple[str, str]] = []
    retry: int | None = None
    for detail in status.details:
        if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            info = error_details_pb2.ErrorInfo()
            detail.Unpack(info)
            reason, domain = info.reason, info.domain
        elif detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
            bad = error_details_pb2.BadRequest()
            detail.Unpack(bad)
            violations += [(v.field, v.description) for v in bad.field_violations]
        elif detail.Is(error_details_pb2.RetryInfo.DESCRIPTOR):
            info_retry = error_details_pb2.RetryInfo()
            detail.Unpack(info_retry)
            retry = info_retry.retry_delay.ToMilliseconds()
    trailers = tuple(
        (k, v) for k, v in (error.trailing_metadata() or ()) if k != "grpc-status-details-bin"
    )
    return Failure(
        code=error.code(),
        message=error.details() or "",
        reason=reason,
        domain=domain,
        violations=tuple(violations),
        retry_delay_ms=retry,
        details=tuple(d.SerializeToString() for d in status.details),
        trailers=trailers,
    )
