"""Accounts: sign-up, sign-in (password or Google), sessions, and account commands.

Secrets travel as ``SecretStr`` (never in reprs or logs), are hashed before they reach
PostgreSQL, and never enter an event: hashes ride along as ``Statement``s.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal
from uuid import UUID

import asyncpg
from aiohttp import web
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, SecretStr

from midas.config import Settings
from midas.domain.accounts import Account, EmailTaken, normal_email
from midas.domain.errors import DomainError, RuleViolation
from midas.eventstore import AppendResult, Repository, retry_on_conflict
from midas.http.api import Api
from midas.http.auth import (
    Principal,
    Role,
    current_principal,
    issue_access_token,
    require_principal,
)
from midas.http.consistency import command_response
from midas.http.context import command_metadata, path_uuid
from midas.http.keys import ACCESS, CLOCK, DATABASE, GOOGLE, LIMITER, REPOSITORY, SETTINGS
from midas.http.problems import Problem
from midas.http.ratelimit import client_ip, enforce
from midas.security import credentials, sessions
from midas.security.google import GoogleIdentity, GoogleUnavailable, InvalidGoogleToken
from midas.security.passwords import check_password_rules, hash_password, verify_password

auth_api = Api(tag="auth", kind="command", idempotent=False)
api = Api(tag="accounts", kind="command")

NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}
_PHONE = r"^\+?[0-9 ().-]{6,32}$"


# -- command models ------------------------------------------------------------------


def _email(value: str) -> str:
    try:
        return normal_email(value)
    except RuleViolation:
        raise ValueError("not a valid email address") from None


def _password(value: SecretStr) -> SecretStr:
    check_password_rules(value.get_secret_value())  # WeakPassword is a ValueError
    return value


Email = Annotated[str, Field(max_length=254), AfterValidator(_email)]
NewPassword = Annotated[
    SecretStr,
    Field(description="10+ characters, at most 72 bytes (UTF-8)."),
    AfterValidator(_password),
]


class Consent(BaseModel):
    model_config = ConfigDict(extra="forbid")

    version: str = Field(min_length=1, max_length=40, description="Privacy terms version.")
    accepted: Literal[True]


class Register(BaseModel):
    model_config = ConfigDict(extra="forbid")

    email: Email
    name: str = Field(min_length=1, max_length=200)
    phone: str | None = Field(None, pattern=_PHONE)
    password: NewPassword
    consent: Consent


class Login(BaseModel):
    model_config = ConfigDict(extra="forbid")

    email: str = Field(max_length=254)
    password: SecretStr = Field(max_length=1024)


class Refresh(BaseModel):
    model_config = ConfigDict(extra="forbid")

    refresh_token: SecretStr = Field(max_length=256)


class Logout(BaseModel):
    model_config = ConfigDict(extra="forbid")

    refresh_token: SecretStr | None = Field(None, max_length=256)


class GoogleSignIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id_token: SecretStr = Field(max_length=8192)
    consent: Consent | None = Field(None, description="Needed when this creates an account.")


class ChangeProfile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str | None = Field(None, min_length=1, max_length=200)
    phone: str | None = Field(None, pattern=_PHONE)
    email: Email | None = None


class ChangePassword(BaseModel):
    model_config = ConfigDict(extra="forbid")

    current_password: SecretStr = Field(max_length=1024)
    new_password: NewPassword


class ChangeRole(BaseModel):
    model_config = ConfigDict(extra="forbid")

    role: Role


class Tokens(BaseModel):
    access_token: str
    token_type: str = "Bearer"
    expires_in: int
    refresh_token: str
    refresh_expires_in: int
    account_id: UUID
    role: str


class AccountCommandResult(BaseModel):
    id: UUID
    position: int


# -- use cases -----------------------------------------------------------------------


async def create_account(
    repo: Repository,
    *,
    email: str,
    name: str,
    password: str | None,
    rounds: int,
    metadata: dict[str, Any],
    role: str = "customer",
    phone: str | None = None,
    consent_version: str | None = None,
    consent_at: datetime | None = None,
    google_subject: str | None = None,
) -> tuple[UUID, AppendResult]:
    """Register an account; the email claim and hash commit with its first event."""
    hashed = await hash_password(password, rounds) if password is not None else None
    account = Account.register(
        email=email, name=name, role=role, phone=phone, consent_version=consent_version,
        consent_at=consent_at, google_subject=google_subject,
    )
    insert = credentials.insert(account.id, account.email, role, hashed, google_subject)
    try:
        result = await repo.save(account, metadata=metadata, statements=[insert])
    except asyncpg.UniqueViolationError:
        raise EmailTaken() from None
    return account.id, result


async def sign_in(settings: Settings, conn: asyncpg.Connection, account_id: UUID,
                  role: str) -> Tokens:
    refresh = await sessions.start(conn, account_id, settings.refresh_token_ttl_s)
    return _tokens(settings, account_id, role, refresh)


def _tokens(settings: Settings, account_id: UUID, role: str, refresh: str) -> Tokens:
    return Tokens(
        access_token=issue_access_token(settings, account_id, Role(role)),
        expires_in=settings.access_token_ttl_s,
        refresh_token=refresh,
        refresh_expires_in=settings.refresh_token_ttl_s,
        account_id=account_id,
        role=role,
    )


async def change_account(
    repo: Repository,
    account_id: UUID,
    change: Any,
    metadata: dict[str, Any],
) -> AppendResult:
    """Load, apply ``change(account) -> statements``, save; again on a version race."""

    async def attempt() -> AppendResult:
        account = await repo.get(account_id, cls=Account)
        statements = change(account)
        try:
            return await repo.save(account, metadata=metadata, statements=statements)
        except asyncpg.UniqueViolationError:
            raise EmailTaken() from None

    return await retry_on_conflict(attempt)


# -- who may touch whom ----------------------------------------------------------------


def reach(principal: Principal, account_id: UUID) -> None:
    """Customers reach only themselves: anyone else's id does not exist for them."""
    if principal.role == Role.CUSTOMER and principal.account_id != account_id:
        raise web.HTTPNotFound()


def may_manage(principal: Principal, account: Account) -> None:
    """Self; super admins anyone; admins customers; concierges only themselves."""
    if principal.account_id == account.id or principal.role == Role.SUPER_ADMIN:
        return
    if principal.role == Role.ADMIN and account.role == Role.CUSTOMER:
        return
    raise Problem(403, "Your role may not change this account.")


# -- auth routes ---------------------------------------------------------------------


def _json(model: BaseModel, status: int = 200) -> web.Response:
    return web.json_response(text=model.model_dump_json(), status=status, headers=NO_STORE)


def _refused(detail: str) -> Problem:
    return Problem(401, detail, headers={"WWW-Authenticate": 'Bearer realm="midas"'})


@auth_api.post("/api/v1/auth/register", summary="Create a customer account", body=Register,
               response=AccountCommandResult)
async def post_register(request: web.Request, body: Register) -> web.Response:
    settings = request.app[SETTINGS]
    await enforce(request.app[LIMITER], f"register:ip:{client_ip(request, settings)}",
                  settings.register_rate_limit, settings.register_rate_window_s,
                  "registrations")
    account_id, result = await create_account(
        request.app[REPOSITORY], email=body.email, name=body.name, phone=body.phone,
        password=body.password.get_secret_value(), rounds=settings.bcrypt_rounds,
        consent_version=body.consent.version, consent_at=request.app[CLOCK](),
        metadata=command_metadata(request),
    )
    return command_response(result, {"id": str(account_id)})


@auth_api.post("/api/v1/auth/login", summary="Sign in with email and password", body=Login,
               response=Tokens, status=200)
async def post_login(request: web.Request, body: Login) -> web.Response:
    app, settings = request.app, request.app[SETTINGS]
    await enforce(app[LIMITER], f"login:ip:{client_ip(request, settings)}",
                  settings.login_rate_limit, settings.login_rate_window_s, "sign-in attempts")
    password, now = body.password.get_secret_value(), app[CLOCK]()
    async with app[DATABASE].acquire() as conn:
        found = await credentials.by_email(conn, body.email)
        if found is not None and found.locked_until is not None and found.locked_until > now:
            await verify_password(password, None, settings.bcrypt_rounds)  # same cost
            wait = max(1, int((found.locked_until - now).total_seconds() + 0.999))
            raise Problem(429, f"Too many failed sign-ins; try again in {wait} s.",
                          title="Account temporarily locked", headers={"Retry-After": str(wait)})
        hashed = found.password_hash if found is not None else None
        ok = await verify_password(password, hashed, settings.bcrypt_rounds)
        if not ok or found is None or not found.active:
            if found is not None and found.active:
                await credentials.record_failure(
                    conn, found.account_id, now, threshold=settings.lockout_threshold,
                    base_s=settings.lockout_base_s, max_s=settings.lockout_max_s,
                )
            raise _refused("The email or password is wrong.")
        await credentials.record_success(conn, found.account_id)
        tokens = await sign_in(settings, conn, found.account_id, found.role)
    return _json(tokens)


@auth_api.post("/api/v1/auth/refresh", summary="Trade a refresh token for new tokens",
               body=Refresh, response=Tokens, status=200)
async def post_refresh(request: web.Request, body: Refresh) -> web.Response:
    settings = request.app[SETTINGS]
    await enforce(request.app[LIMITER], f"refresh:ip:{client_ip(request, settings)}",
                  settings.refresh_rate_limit, settings.refresh_rate_window_s, "refreshes")
    async with request.app[DATABASE].acquire() as conn:
        try:
            session = await sessions.rotate(
                conn, body.refresh_token.get_secret_value(), settings.refresh_token_ttl_s,
                settings.refresh_reuse_grace_s,
            )
        except sessions.RefreshRefused:
            raise _refused("The refresh token is invalid, expired or revoked.") from None
    return _json(_tokens(settings, session.account_id, session.role, session.refresh_token))


@auth_api.post("/api/v1/auth/logout", summary="End a session", body=Logout, status=204)
async def post_logout(request: web.Request, body: Logout) -> web.Response:
    settings, principal = request.app[SETTINGS], current_principal(request)
    async with request.app[DATABASE].acquire() as conn:
        if body.refresh_token is not None:
            await sessions.revoke_family_of(conn, body.refresh_token.get_secret_value())
        if principal is not None and principal.token_id:
            expires = datetime.now(UTC) + timedelta(seconds=settings.access_token_ttl_s)
            await sessions.revoke_access_token(conn, principal.token_id, expires)
    request.app[ACCESS].forget()  # this process at once; the others on the announcement
    return web.Response(status=204, headers=NO_STORE)


@auth_api.post("/api/v1/auth/google", summary="Sign in (or up) with a Google ID token",
               body=GoogleSignIn, response=Tokens, status=200)
async def post_google(request: web.Request, body: GoogleSignIn) -> web.Response:
    app, settings = request.app, request.app[SETTINGS]
    await enforce(app[LIMITER], f"login:ip:{client_ip(request, settings)}",
                  settings.login_rate_limit, settings.login_rate_window_s, "sign-in attempts")
    try:
        identity = await app[GOOGLE].verify(body.id_token.get_secret_value())
    except InvalidGoogleToken:
        raise _refused("The Google ID token is not valid.") from None
    except GoogleUnavailable as exc:
        raise Problem(503, str(exc), headers={"Retry-After": "5"}) from None
    account_id = await _google_account(request, identity, body.consent)
    async with app[DATABASE].acquire() as conn:
        access = await credentials.access_of(conn, account_id, None)
        if access is None or not access[1]:
            raise _refused("This account is deactivated.")
        tokens = await sign_in(settings, conn, account_id, access[0])
    return _json(tokens)


async def _google_account(
    request: web.Request, identity: GoogleIdentity, consent: Consent | None
) -> UUID:
    """The account of this Google identity: linked by subject, else by email, else new."""
    app, metadata = request.app, command_metadata(request)
    async with app[DATABASE].acquire() as conn:
        linked = await credentials.by_google_subject(conn, identity.subject)
        owner = await credentials.email_owner(conn, identity.email)
    if linked is not None:
        return linked
    if owner is not None:
        def link(account: Account) -> list[Any]:
            account.link_google(identity.subject)
            return [credentials.set_fields(account.id, google_subject=identity.subject)]

        try:
            await change_account(app[REPOSITORY], owner, link, metadata)
        except DomainError:
            raise _refused("This account cannot be linked to Google.") from None
        return owner
    if consent is None:
        raise Problem(422, "Creating an account needs consent to the privacy terms.",
                      title="Invalid request",
                      errors=[{"field": "body.consent", "message": "required to create an"
                               " account", "type": "missing"}])
    account_id, _ = await create_account(
        app[REPOSITORY], email=identity.email, name=identity.name[:200], password=None,
        rounds=app[SETTINGS].bcrypt_rounds, metadata=metadata, consent_version=consent.version,
        consent_at=app[CLOCK](), google_subject=identity.subject,
    )
    return account_id


# -- account commands ----------------------------------------------------------------


@api.put("/api/v1/accounts/{id}/profile", summary="Change name, phone or email",
         body=ChangeProfile, response=AccountCommandResult)
async def put_account_profile(request: web.Request, body: ChangeProfile) -> web.Response:
    principal, account_id = require_principal(request), path_uuid(request)
    reach(principal, account_id)

    def change(account: Account) -> list[Any]:
        may_manage(principal, account)
        before = account.email
        account.change_profile(name=body.name, phone=body.phone, email=body.email)
        if account.email == before:
            return []
        return [credentials.set_fields(account.id, email=account.email)]

    result = await change_account(request.app[REPOSITORY], account_id, change,
                                  command_metadata(request))
    return command_response(result, {"id": str(account_id)}, status=200)


@api.put("/api/v1/accounts/{id}/password", summary="Change one's own password",
         body=ChangePassword, response=AccountCommandResult, idempotent=False)
async def put_account_password(request: web.Request, body: ChangePassword) -> web.Response:
    principal, account_id = require_principal(request), path_uuid(request)
    if principal.account_id != account_id:  # nobody reaches another's password
        raise web.HTTPNotFound()
    settings = request.app[SETTINGS]
    async with request.app[DATABASE].acquire() as conn:
        stored = await conn.fetchval(
            "SELECT password_hash FROM auth_accounts WHERE account_id = $1", account_id
        )
    current = body.current_password.get_secret_value()
    if not await verify_password(current, stored, settings.bcrypt_rounds):
        raise Problem(422, "The current password is wrong.", title="Invalid request",
                      errors=[{"field": "body.current_password", "message": "wrong password",
                               "type": "wrong_password"}])
    hashed = await hash_password(body.new_password.get_secret_value(), settings.bcrypt_rounds)

    def change(account: Account) -> list[Any]:
        account.record_password_change()
        return [credentials.set_password(account.id, hashed), sessions.revoke_all(account.id)]

    result = await change_account(request.app[REPOSITORY], account_id, change,
                                  command_metadata(request))
    return command_response(result, {"id": str(account_id)}, status=200)


@api.put("/api/v1/accounts/{id}/role", summary="Change an account's role (super admin)",
         body=ChangeRole, response=AccountCommandResult)
async def put_account_role(request: web.Request, body: ChangeRole) -> web.Response:
    principal, account_id = require_principal(request), path_uuid(request)

    def change(account: Account) -> list[Any]:
        if account.id == principal.account_id:
            raise RuleViolation("a super admin cannot change their own role")
        account.change_role(body.role.value)
        return [credentials.set_fields(account.id, role=account.role)]

    result = await change_account(request.app[REPOSITORY], account_id, change,
                                  command_metadata(request))
    request.app[ACCESS].forget()
    return command_response(result, {"id": str(account_id)}, status=200)


@api.post("/api/v1/accounts/{id}/deactivate", summary="Deactivate an account",
          response=AccountCommandResult, status=200)
async def post_account_deactivate(request: web.Request) -> web.Response:
    principal, account_id = require_principal(request), path_uuid(request)
    reach(principal, account_id)

    def change(account: Account) -> list[Any]:
        may_manage(principal, account)
        if account.id == principal.account_id and account.is_staff:
            raise RuleViolation("staff cannot deactivate their own account")
        account.deactivate()
        return [credentials.set_fields(account.id, active=False),
                sessions.revoke_all(account.id)]

    result = await change_account(request.app[REPOSITORY], account_id, change,
                                  command_metadata(request))
    request.app[ACCESS].forget()
    return command_response(result, {"id": str(account_id)}, status=200)
