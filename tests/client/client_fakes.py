"""A scriptable fake IdentityService on a real grpc server, for the client's tests.

It answers every RPC with plausible data, records what it was sent (requests,
metadata, the deadline left), and can be told to fail the next N calls of a
method with a rich status (ErrorInfo, BadRequest, RetryInfo built with
grpcio-status) or to stall a method until released. Tokens it issues are
JWT-shaped (unsigned) with an `exp` on the fake's own clock, `now`.
"""

from __future__ import annotations

import asyncio
import base64
import json
import threading
from collections import Counter, defaultdict
from collections.abc import Awaitable, Callable, Sequence
from concurrent import futures
from dataclasses import dataclass, field
from typing import Literal, TypeVar

import grpc
from google.protobuf import any_pb2, duration_pb2, struct_pb2, timestamp_pb2
from google.protobuf.message import Message
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc_status import rpc_status

from identity.v1 import identity_service_pb2 as pb
from identity.v1 import identity_service_pb2_grpc as pb_grpc
from identity_client import AsyncIdentityClient, ClientConfig, IdentityClient, RetryPolicy

T = TypeVar("T")
M = TypeVar("M", bound=Message)
Kind = Literal["sync", "async"]
KINDS: tuple[Kind, ...] = ("sync", "async")

NOW = 1_700_000_000.0
"""The fake's clock at the start of every test (Unix seconds)."""
LIFETIME = 3600
FAST_RETRY = RetryPolicy(max_attempts=3, initial_backoff=0.001, max_backoff=0.01)
SERVICE = "identity.v1.IdentityService"


def fake_jwt(claims: dict[str, object]) -> str:
    """A JWT-shaped string (not signed: the fake never checks signatures)."""

    def part(value: dict[str, object]) -> str:
        raw = json.dumps(value, separators=(",", ":")).encode()
        return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()

    return f"{part({'alg': 'RS256', 'kid': 'fake'})}.{part(claims)}.c2ln"


def rich_status(
    code: grpc.StatusCode,
    reason: str = "",
    *,
    message: str = "Scripted failure.",
    domain: str = "identity.v1",
    violations: Sequence[tuple[str, str]] = (),
    retry_delay: float | None = None,
) -> status_pb2.Status:
    """A google.rpc.Status the way the server builds one."""
    details: list[any_pb2.Any] = []
    if reason:
        info = any_pb2.Any()
        info.Pack(error_details_pb2.ErrorInfo(reason=reason, domain=domain))
        details.append(info)
    if violations:
        bad = any_pb2.Any()
        bad.Pack(
            error_details_pb2.BadRequest(
                field_violations=[
                    error_details_pb2.BadRequest.FieldViolation(field=f, description=d)
                    for f, d in violations
                ]
            )
        )
        details.append(bad)
    if retry_delay is not None:
        delay = duration_pb2.Duration()
        delay.FromMilliseconds(round(retry_delay * 1000))
        retry = any_pb2.Any()
        retry.Pack(error_details_pb2.RetryInfo(retry_delay=delay))
        details.append(retry)
    number = getattr(code_pb2, code.name)
    return status_pb2.Status(code=number, message=message, details=details)


@dataclass
class _Plan:
    failures: dict[str, list[status_pb2.Status | tuple[grpc.StatusCode, str]]] = field(
        default_factory=lambda: defaultdict(list)
    )
    stalled: set[str] = field(default_factory=set)


class FakeIdentity(pb_grpc.IdentityServiceServicer):
    """The fake servicer. All state is reset by `reset()` between tests."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.release = threading.Event()
        self.reset()

    def reset(self) -> None:
        with self._lock:
            self.release.set()  # free any handler still stalled by the last test
            self.release = threading.Event()
            self.calls: Counter[str] = Counter()
            self.requests: defaultdict[str, list[Message]] = defaultdict(list)
            self.metadata: defaultdict[str, list[dict[str, str]]] = defaultdict(list)
            self.time_left: list[float | None] = []
            self.peers: list[str] = []
            self.plan = _Plan()
            self.now = NOW
            self.lifetime = LIFETIME
            self.groups: tuple[str, ...] = ("users",)
            self.medium: pb.DeliveryMedium.ValueType = pb.DELIVERY_MEDIUM_EMAIL
            self.issued: dict[str, pb.Principal] = {}
            self.revoked: set[str] = set()
            self.refresh_entered = threading.Event()
            self.refresh_gate: threading.Event | None = None
            self._serial = 0

    # Scripting ----------------------------------------------------------------

    def fail(
        self,
        method: str,
        code: grpc.StatusCode,
        reason: str = "",
        *,
        times: int = 1,
        message: str = "Scripted failure.",
        domain: str = "identity.v1",
        violations: Sequence[tuple[str, str]] = (),
        retry_delay: float | None = None,
    ) -> None:
        """Fail the next `times` calls of `method` with this rich status."""
        status = rich_status(
            code,
            reason,
            message=message,
            domain=domain,
            violations=violations,
            retry_delay=retry_delay,
        )
        with self._lock:
            self.plan.failures[method].extend([status] * times)

    def fail_plain(self, method: str, code: grpc.StatusCode, message: str) -> None:
        """Fail the next call of `method` with a bare status (no details)."""
        with self._lock:
            self.plan.failures[method].append((code, message))

    def stall(self, method: str) -> None:
        """Make `method` hang until the client gives up (or the test ends)."""
        with self._lock:
            self.plan.stalled.add(method)

    def issue(self, email: str) -> pb.AuthTokens:
        """New tokens for `email`, valid for `lifetime` seconds from `now`."""
        with self._lock:
            self._serial += 1
            serial = self._serial
        sub = f"sub-{email}"
        exp = int(self.now) + self.lifetime
        access = fake_jwt({"sub": sub, "exp": exp, "token_use": "access", "n": serial})
        principal = pb.Principal(
            sub=sub,
            username=sub,
            groups=self.groups,
            scopes=["aws.cognito.signin.user.admin"],
            client_id="fake-client",
            token_use=pb.TOKEN_USE_ACCESS,
            issued_at=timestamp_pb2.Timestamp(seconds=int(self.now)),
            expires_at=timestamp_pb2.Timestamp(seconds=exp),
            jti=f"jti-{serial}",
        )
        with self._lock:
            self.issued[access] = principal
        return pb.AuthTokens(
            access_token=access,
            id_token=fake_jwt({"sub": sub, "exp": exp, "token_use": "id", "n": serial}),
            refresh_token=f"refresh-{email}",
            expires_in=self.lifetime,
            token_type="Bearer",
            username=sub,
        )

    def sent(self, method: str, kind: type[M], index: int = 0) -> M:
        """The request of call `index` of `method`, checked to be a `kind`."""
        request = self.requests[method][index]
        assert isinstance(request, kind)
        return request

    # Plumbing -----------------------------------------------------------------

    def _enter(
        self, method: str, request: Message, context: grpc.ServicerContext
    ) -> dict[str, str]:
        """Record the call, then fail or stall it as planned; its metadata."""
        metadata = {k: v for k, v in context.invocation_metadata() if isinstance(v, str)}
        with self._lock:
            self.calls[method] += 1
            self.requests[method].append(request)
            self.metadata[method].append(metadata)
            self.time_left.append(context.time_remaining())
            self.peers.append(context.peer())
            queued = self.plan.failures[method]
            failure = queued.pop(0) if queued else None
            stalled = method in self.plan.stalled
            release = self.release
        if stalled:
            while context.is_active() and not release.wait(0.02):
                pass
            context.abort(grpc.StatusCode.CANCELLED, "Stalled call released.")
        if isinstance(failure, tuple):
            context.abort(*failure)
        if failure is not None:
            context.abort_with_status(rpc_status.to_status(failure))
        return metadata

    def _caller(self, metadata: dict[str, str], context: grpc.ServicerContext) -> pb.Principal:
        header = metadata.get("authorization", "")
        principal = self.issued.get(header.removeprefix("Bearer "))
        if not header.startswith("Bearer ") or principal is None:
            reason = "TOKEN_MISSING" if not header else "TOKEN_MALFORMED"
            context.abort_with_status(
                rpc_status.to_status(
                    rich_status(grpc.StatusCode.UNAUTHENTICATED, reason, message="No.")
                )
            )
        return principal

    def _delivery(self) -> pb.CodeDelivery:
        return pb.CodeDelivery(
            destination="u***@e***.com", medium=self.medium, attribute_name="email"
        )

    # The RPCs -------------------------------------------------------------------

    def SignUp(self, request: pb.SignUpRequest, context: grpc.ServicerContext) -> pb.SignUpResponse:
        self._enter("SignUp", request, context)
        return pb.SignUpResponse(code_delivery=self._delivery())

    def Confirm(
        self, request: pb.ConfirmRequest, context: grpc.ServicerContext
    ) -> pb.ConfirmResponse:
        self._enter("Confirm", request, context)
        return pb.ConfirmResponse()

    def ResendConfirmationCode(
        self, request: pb.ResendConfirmationCodeRequest, context: grpc.ServicerContext
    ) -> pb.ResendConfirmationCodeResponse:
        self._enter("ResendConfirmationCode", request, context)
        return pb.ResendConfirmationCodeResponse(code_delivery=self._delivery())

    def SignIn(self, request: pb.SignInRequest, context: grpc.ServicerContext) -> pb.SignInResponse:
        self._enter("SignIn", request, context)
        if request.email.startswith("mfa"):
            challenge = pb.AuthChallenge(
                name=pb.CHALLENGE_NAME_SOFTWARE_TOKEN_MFA,
                session="session-1",
                parameters={"USER_ID_FOR_SRP": "x"},
            )
            return pb.SignInResponse(challenge=challenge)
        return pb.SignInResponse(tokens=self.issue(request.email))

    def RespondToChallenge(
        self, request: pb.RespondToChallengeRequest, context: grpc.ServicerContext
    ) -> pb.RespondToChallengeResponse:
        self._enter("RespondToChallenge", request, context)
        return pb.RespondToChallengeResponse(tokens=self.issue(request.email))

    def Refresh(
        self, request: pb.RefreshRequest, context: grpc.ServicerContext
    ) -> pb.RefreshResponse:
        self._enter("Refresh", request, context)
        self.refresh_entered.set()
        gate = self.refresh_gate
        if gate is not None:
            gate.wait(10)
        if request.refresh_token in self.revoked:
            context.abort_with_status(
                rpc_status.to_status(
                    rich_status(
                        grpc.StatusCode.UNAUTHENTICATED, "REFRESH_TOKEN_INVALID", message="No."
                    )
                )
            )
        tokens = self.issue(request.refresh_token.removeprefix("refresh-"))
        tokens.refresh_token = ""  # as Cognito: no new refresh token on refresh
        return pb.RefreshResponse(tokens=tokens)

    def ForgotPassword(
        self, request: pb.ForgotPasswordRequest, context: grpc.ServicerContext
    ) -> pb.ForgotPasswordResponse:
        self._enter("ForgotPassword", request, context)
        return pb.ForgotPasswordResponse(code_delivery=self._delivery())

    def ConfirmReset(
        self, request: pb.ConfirmResetRequest, context: grpc.ServicerContext
    ) -> pb.ConfirmResetResponse:
        self._enter("ConfirmReset", request, context)
        return pb.ConfirmResetResponse()

    def VerifyToken(
        self, request: pb.VerifyTokenRequest, context: grpc.ServicerContext
    ) -> pb.VerifyTokenResponse:
        self._enter("VerifyToken", request, context)
        principal = self.issued.get(request.token)
        if principal is None:
            context.abort_with_status(
                rpc_status.to_status(
                    rich_status(grpc.StatusCode.UNAUTHENTICATED, "TOKEN_MALFORMED", message="No.")
                )
            )
        for wanted, held, reason in (
            (request.required_groups, principal.groups, "GROUP_REQUIRED"),
            (request.required_scopes, principal.scopes, "SCOPE_REQUIRED"),
        ):
            if wanted and set(wanted).isdisjoint(held):
                context.abort_with_status(
                    rpc_status.to_status(
                        rich_status(grpc.StatusCode.PERMISSION_DENIED, reason, message="No.")
                    )
                )
        claims = struct_pb2.Struct()
        claims.update({"sub": principal.sub, "exp": principal.expires_at.seconds})
        return pb.VerifyTokenResponse(principal=principal, claims=claims)

    def GetCurrentUser(
        self, request: pb.GetCurrentUserRequest, context: grpc.ServicerContext
    ) -> pb.GetCurrentUserResponse:
        caller = self._caller(self._enter("GetCurrentUser", request, context), context)
        return pb.GetCurrentUserResponse(
            sub=caller.sub,
            username=caller.username,
            email=caller.sub.removeprefix("sub-"),
            email_verified=True,
            groups=caller.groups,
            attributes={"name": "Ada"},
            mfa_methods=["SOFTWARE_TOKEN_MFA"],
        )

    def SignOut(
        self, request: pb.SignOutRequest, context: grpc.ServicerContext
    ) -> pb.SignOutResponse:
        self._caller(self._enter("SignOut", request, context), context)
        return pb.SignOutResponse()

    def SetUpTotp(
        self, request: pb.SetUpTotpRequest, context: grpc.ServicerContext
    ) -> pb.SetUpTotpResponse:
        metadata = self._enter("SetUpTotp", request, context)
        if not request.session:  # an MFA_SETUP session stands in for the bearer
            self._caller(metadata, context)
        return pb.SetUpTotpResponse(
            secret_code="JBSWY3DPEHPK3PXP",
            otpauth_uri="otpauth://totp/x?secret=JBSWY3DPEHPK3PXP",
            session=f"{request.session}-totp" if request.session else "",
        )

    def ConfirmTotp(
        self, request: pb.ConfirmTotpRequest, context: grpc.ServicerContext
    ) -> pb.ConfirmTotpResponse:
        metadata = self._enter("ConfirmTotp", request, context)
        if not request.session:
            self._caller(metadata, context)
        return pb.ConfirmTotpResponse(
            session=f"{request.session}-verified" if request.session else ""
        )

    def DisableTotp(
        self, request: pb.DisableTotpRequest, context: grpc.ServicerContext
    ) -> pb.DisableTotpResponse:
        self._caller(self._enter("DisableTotp", request, context), context)
        return pb.DisableTotpResponse()

    def GetAwsCredentials(
        self, request: pb.GetAwsCredentialsRequest, context: grpc.ServicerContext
    ) -> pb.GetAwsCredentialsResponse:
        self._caller(self._enter("GetAwsCredentials", request, context), context)
        response = pb.GetAwsCredentialsResponse(identity_id="us-east-1:identity-1")
        response.credentials.access_key_id = "ASIAKEY1"
        response.credentials.secret_access_key = "secret-key-1"
        response.credentials.session_token = "session-token-1"
        response.credentials.expiration.FromSeconds(int(NOW + LIFETIME))
        return response

    def StartFederatedSignIn(
        self, request: pb.StartFederatedSignInRequest, context: grpc.ServicerContext
    ) -> pb.StartFederatedSignInResponse:
        self._enter("StartFederatedSignIn", request, context)
        return pb.StartFederatedSignInResponse(
            authorize_url="https://auth.example/oauth2/authorize?x=1",
            transaction="sealed-1",
            expires_in=600,
        )

    def CompleteFederatedSignIn(
        self, request: pb.CompleteFederatedSignInRequest, context: grpc.ServicerContext
    ) -> pb.CompleteFederatedSignInResponse:
        self._enter("CompleteFederatedSignIn", request, context)
        return pb.CompleteFederatedSignInResponse(
            tokens=self.issue("federated@example.com"),
            provider=pb.FEDERATED_PROVIDER_GOOGLE,
            sub="sub-federated",
        )


@dataclass
class FakeServer:
    """The running fake: where to reach it and its servicer."""

    target: str
    servicer: FakeIdentity

    def config(
        self, *, default_timeout: float = 10.0, retry: RetryPolicy = FAST_RETRY
    ) -> ClientConfig:
        """A client config for the fake: fast retries, a generous deadline."""
        return ClientConfig(default_timeout=default_timeout, retry=retry)


def start_fake() -> tuple[grpc.Server, FakeServer]:
    servicer = FakeIdentity()
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=32))
    pb_grpc.add_IdentityServiceServicer_to_server(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    return server, FakeServer(f"127.0.0.1:{port}", servicer)


class FakeClock:
    """A clock the test moves by hand (Unix seconds)."""

    def __init__(self, now: float = NOW) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def run_with(
    kind: Kind,
    target: str,
    config: ClientConfig,
    call: Callable[[IdentityClient], T],
    acall: Callable[[AsyncIdentityClient], Awaitable[T]],
) -> T:
    """Run one call with a fresh blocking or async client."""
    if kind == "sync":
        with IdentityClient(target, config) as client:
            return call(client)

    async def main() -> T:
        async with AsyncIdentityClient(target, config) as client:
            return await acall(client)

    return asyncio.run(main())
