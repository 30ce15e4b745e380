"""JWT authentication: the application signs a token, the node verifies it.

The token comes from the handshake's ``auth: {token: "..."}``, else from the
cookie named by ``PNS_JWT_COOKIE``. Exactly one algorithm is accepted, the
configured one (``PNS_JWT_ALGORITHM``, else HS256 with a secret, else inferred
from the public key), so ``alg: none`` and HS/RS key confusion are refused.

Claims: ``sub`` is the user (an integer ``sub`` is its decimal string); the
device is ``sid``, else ``jti`` (each a non-empty string, or an integer as its
decimal string), else a hash of the token itself (so the same token is the same
device, and a refreshed token without ``sid``/``jti`` is a new one).

``exp``, ``nbf`` (and ``iat``) are enforced when present, with ``LEEWAY``
seconds of clock skew; ``aud`` and ``iss`` only when ``PNS_JWT_AUDIENCE`` /
``PNS_JWT_ISSUER`` are set (a token's ``aud`` is ignored otherwise).
"""

from __future__ import annotations

import hashlib
import logging
from typing import TYPE_CHECKING, Any

import jwt
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import load_pem_public_key

from ..errors import SettingsError, Unauthorized
from ..settings import AsymmetricAlgorithm, JWTAlgorithm, Settings
from . import Handshake, Identity, user_id_of

if TYPE_CHECKING:
    from jwt.types import Options

logger = logging.getLogger(__name__)

# Seconds of clock skew tolerated between the application and the node on exp/nbf/iat.
LEEWAY = 5.0

_EC_ALGORITHMS: dict[str, AsymmetricAlgorithm] = {
    "secp256r1": "ES256",
    "secp384r1": "ES384",
    "secp521r1": "ES512",
}


class JWTAuthenticator:
    """Verifies a JWT against the configured secret or public key.

    ``authenticate`` raises ``Unauthorized`` (message "unauthorized") for a
    missing, malformed, badly signed, expired, not-yet-valid or wrong-audience
    token, or one without a usable ``sub``; the reason is logged at INFO, the
    token never. The constructor raises ``SettingsError`` for an unusable key.
    """

    def __init__(self, settings: Settings) -> None:
        self._key: Any
        self._algorithm: JWTAlgorithm
        # Tried after the current key fails on the signature alone (a rotation).
        self._previous_key: Any = settings.jwt_previous_secret
        if settings.jwt_secret:
            self._key = settings.jwt_secret
            self._algorithm = settings.jwt_algorithm or "HS256"
        elif settings.jwt_public_key:
            self._key = _load_public_key(settings.jwt_public_key)
            self._algorithm = settings.jwt_algorithm or _infer_algorithm(self._key)
        else:
            raise SettingsError("JWT authentication needs PNS_JWT_SECRET or PNS_JWT_PUBLIC_KEY")
        try:  # a key that does not fit the algorithm would refuse every token: fail at start
            jwt.get_algorithm_by_name(self._algorithm).prepare_key(self._key)
        except (jwt.PyJWTError, NotImplementedError, TypeError, ValueError) as exc:
            raise SettingsError(
                f"PNS_JWT_ALGORITHM={self._algorithm!r} does not fit the configured key: {exc}"
            ) from None
        self._audience = settings.jwt_audience
        self._issuer = settings.jwt_issuer
        self._cookie = settings.jwt_cookie
        self._options: Options = {
            # PyJWT refuses a non-string sub or jti; PNS accepts ints, checked below.
            "verify_sub": False,
            "verify_jti": False,
            "verify_aud": self._audience is not None,
            "verify_iss": self._issuer is not None,
            # A token without exp would be valid forever (PNS_JWT_ALLOW_NO_EXP).
            "require": [] if settings.jwt_allow_no_exp else ["exp"],
        }

    async def authenticate(self, handshake: Handshake) -> Identity:
        """The identity the handshake's token names; ``Unauthorized`` on any failure."""
        token = handshake.token
        if token is None and self._cookie:
            token = handshake.cookies.get(self._cookie) or None
        if token is None:
            return _refuse("no token", handshake)
        try:
            try:
                claims = self._decode(token, self._key)
            except jwt.InvalidSignatureError:
                if self._previous_key is None:
                    raise
                claims = self._decode(token, self._previous_key)
        except jwt.PyJWTError as exc:
            return _refuse(f"{type(exc).__name__}: {exc}", handshake)
        user_id = user_id_of(claims.get("sub"))
        if user_id is None:
            return _refuse("sub missing or not a non-empty string or integer", handshake)
        exp = claims.get("exp")  # PyJWT has checked it is a number when present
        return Identity(
            user_id=user_id,
            device_id=_device_id(claims, token),
            expires_at=float(exp) if exp is not None else None,
        )

    def _decode(self, token: str, key: Any) -> dict[str, Any]:
        claims: dict[str, Any] = jwt.decode(
            token,
            key,
            algorithms=[self._algorithm],  # one algorithm: no alg none, no HS/RS confusion
            audience=self._audience,
            issuer=self._issuer,
            leeway=LEEWAY,
            options=self._options,
        )
        return claims

    async def close(self) -> None:
        """Nothing to release."""


def _device_id(claims: dict[str, Any], token: str) -> str:
    for claim in ("sid", "jti"):
        value = user_id_of(claims.get(claim))  # same rule: non-empty str, or int
        if value is not None:
            return value
    return "jwt:" + hashlib.sha256(token.encode()).hexdigest()[:32]


def _refuse(reason: str, handshake: Handshake) -> Identity:
    logger.info("jwt refused (remote %s): %s", handshake.remote, reason)
    raise Unauthorized()


def _load_public_key(pem: str) -> Any:
    # An env var often carries the PEM on one line with literal "\n".
    text = pem.replace("\\n", "\n").strip()
    try:
        return load_pem_public_key(text.encode())
    except ValueError:
        raise SettingsError(
            "PNS_JWT_PUBLIC_KEY: not a PEM public key (-----BEGIN PUBLIC KEY-----)"
        ) from None


def _infer_algorithm(key: Any) -> AsymmetricAlgorithm:
    if isinstance(key, rsa.RSAPublicKey):
        return "RS256"
    if isinstance(key, ec.EllipticCurvePublicKey) and key.curve.name in _EC_ALGORITHMS:
        return _EC_ALGORITHMS[key.curve.name]
    raise SettingsError(
        "PNS_JWT_PUBLIC_KEY: expected an RSA or EC (P-256, P-384, P-521) public key"
    )
