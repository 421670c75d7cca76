"""Accounts: sign-up, sign-in (password or Google), sessions, and account commands.

Secrets travel as ``SecretStr`` (never in reprs or logs), are hashed before they reach
PostgreSQL, and never enter an event: hashes ride along as ``Statement``s. How Google
sign-in meets a password account, and email verification: docs/security.md.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal
from uuid import UUID

import asyncpg
from aiohttp import web
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, SecretStr

from commands import privacy
from commands.account_store import change_account, save_accounts
from commands.verification import (
    BY_GOOGLE,
    BY_LAPSE,
    limit_links,
    link_statements,
    new_link,
    request_change,
    save_claiming,
    unverified_holder,
)
from midas.config import Settings
from midas.domain.accounts import Account, EmailTaken, normal_email
from midas.domain.errors import DomainError, RuleViolation
from midas.eventstore import AppendResult, Repository, Statement, retry_on_conflict
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
from midas.http.fields import Line, Secret
from midas.http.keys import ACCESS, CLOCK, DATABASE, GOOGLE, LIMITER, REPOSITORY, SETTINGS
from midas.http.problems import Problem
from midas.http.ratelimit import RATE_LIMITED, client_ip, enforce
from midas.http.security_events import record_for
from midas.notifications import marketing
from midas.notifications.marketing import VERSION_PATTERN
from midas.security import credentials, sessions, verification
from midas.security.events import Kind, subject_of
from midas.security.google import GoogleIdentity, GoogleUnavailable, InvalidGoogleToken
from midas.security.passwords import check_password_rules, hash_password, verify_password

auth_api = Api(tag="auth", kind="command", idempotent=False)
api = Api(tag="accounts", kind="command")
privacy.ERASERS.append(verification.erase)  # addresses awaiting proof go with an erasure

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


Email = Annotated[Line, Field(max_length=254), AfterValidator(_email)]
NewPassword = Annotated[
    Secret,
    Field(description="10+ characters, at most 72 bytes (UTF-8)."),
    AfterValidator(_password),
]


class Consent(BaseModel):
    model_config = ConfigDict(extra="forbid")

    version: Line = Field(min_length=1, max_length=40, description="Privacy terms version.")
    accepted: Literal[True]


class MarketingOptIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    version: str = Field(min_length=1, max_length=40, pattern=VERSION_PATTERN,
                         description="Marketing terms version (printable ASCII).")
    accepted: bool = Field(description="false (or no `marketing` at all): no consent.")


class Register(BaseModel):
    model_config = ConfigDict(extra="forbid")

    email: Email
    name: Line = Field(min_length=1, max_length=200)
    phone: str | None = Field(None, pattern=_PHONE)
    password: NewPassword
    consent: Consent
    marketing: MarketingOptIn | None = Field(
        None, description="Optional consent to marketing emails; not given by default.")


class Login(BaseModel):
    model_config = ConfigDict(extra="forbid")

    email: Line = Field(max_length=254)
    password: Secret = Field(max_length=1024)


class Refresh(BaseModel):
    model_config = ConfigDict(extra="forbid")

    refresh_token: Secret = Field(max_length=256)


class Logout(BaseModel):
    model_config = ConfigDict(extra="forbid")

    refresh_token: Secret | None = Field(None, max_length=256)


class GoogleSignIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id_token: Secret = Field(max_length=8192)
    consent: Consent | None = Field(None, description="Needed when this creates an account.")


class ChangeProfile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: Line | None = Field(None, min_length=1, max_length=200)
    phone: str | None = Field(None, pattern=_PHONE)
    email: Email | None = None


class ChangePassword(BaseModel):
    model_config = ConfigDict(extra="forbid")

    current_password: Secret = Field(max_length=1024)
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


class ProfileChangeResult(AccountCommandResult):
    email_verification_sent: bool = Field(
        description="A link went to the new email, which takes effect once verified.")


# -- use cases -----------------------------------------------------------------------


def new_account(
    *,
    email: str,
    name: str,
    password_hash: str | None = None,
    role: str = "customer",
    phone: str | None = None,
    consent_version: str | None = None,
    consent_at: datetime | None = None,
    google_subject: str | None = None,
    google_verified: bool = False,
) -> tuple[Account, list[Statement]]:
    """A new account and its sign-in row (the email claim); ``google_verified``: Google
    vouches for the email (its ``email_verified`` claim)."""
    account = Account.register(
        email=email, name=name, role=role, phone=phone, consent_version=consent_version,
        consent_at=consent_at, google_subject=google_subject,
    )
    if google_verified:
        account.verified_by_google(account.email)
    return account, [credentials.insert(account.id, account.email, role, password_hash,
                                        google_subject, email_verified=account.email_verified)]


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
    account, statements = new_account(
        email=email, name=name, password_hash=hashed, role=role, phone=phone,
        consent_version=consent_version, consent_at=consent_at, google_subject=google_subject,
    )
    return account.id, await save_accounts(repo, [account], statements, metadata)


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


# -- who may touch whom ----------------------------------------------------------------


def reach(principal: Principal, account_id: UUID) -> None:
    """Customers reach only themselves: anyone else's id does not exist for them."""
    if principal.role == Role.CUSTOMER and principal.account_id != account_id:
        raise web.HTTPNotFound()


MAY_NOT_MANAGE = {403: "Your role may not change this account"}


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


def _locked(wait: int) -> Problem:
    return Problem(429, f"Too many failed sign-ins; try again in {wait} s.",
                   title="Account temporarily locked", headers={"Retry-After": str(wait)})


@auth_api.post("/api/v1/auth/register", summary="Create a customer account", body=Register,
               response=AccountCommandResult, problems=RATE_LIMITED, example={
                   "email": "ada@example.com", "name": "Ada Lovelace",
                   "password": "Customer passphrase 7",
                   "consent": {"version": "2026-01", "accepted": True}})
async def post_register(request: web.Request, body: Register) -> web.Response:
    settings = request.app[SETTINGS]
    await enforce(request.app[LIMITER], f"register:ip:{client_ip(request, settings)}",
                  settings.register_rate_limit, settings.register_rate_window_s,
                  "registrations")
    app, now, metadata = request.app, request.app[CLOCK](), command_metadata(request)
    hashed = await hash_password(body.password.get_secret_value(), settings.bcrypt_rounds)

    async def attempt() -> tuple[UUID, AppendResult]:
        account, statements = new_account(
            email=body.email, name=body.name, phone=body.phone, password_hash=hashed,
            consent_version=body.consent.version, consent_at=now,
        )
        if body.marketing and body.marketing.accepted:
            account.give_marketing_consent(body.marketing.version, now)
            statements += marketing.consent_state(account)
        verification_id, expires_at = new_link(settings, now)
        account.request_email_verification(str(verification_id), expires_at)
        statements += link_statements(settings, account, verification_id, account.email,
                                      expires_at)
        holder = await _lapsed_holder(app, account.email, now)
        return account.id, await save_claiming(app, account, statements, holder, BY_LAPSE,
                                               metadata)

    account_id, result = await retry_on_conflict(attempt)
    return command_response(result, {"id": str(account_id)})


async def _lapsed_holder(app: web.Application, email: str, now: datetime) -> Account | None:
    """The holder of ``email`` if its unverified claim has lapsed; taken (409) otherwise."""
    async with app[DATABASE].acquire() as conn:
        holder_id = await credentials.email_owner(conn, email)
    if holder_id is None:
        return None
    holder = await app[REPOSITORY].get(holder_id, cls=Account)
    if not holder.is_customer or not holder.claim_lapsed(now):
        raise EmailTaken()
    return holder


@auth_api.post("/api/v1/auth/login", summary="Sign in with email and password", body=Login,
               response=Tokens, status=200,
               example={"email": "ada@example.com", "password": "Customer passphrase 7"},
               problems={429: "Too many attempts from this address, or the account is"
                              " locked for a while: see Retry-After"})
async def post_login(request: web.Request, body: Login) -> web.Response:
    app, settings = request.app, request.app[SETTINGS]
    await enforce(app[LIMITER], f"login:ip:{client_ip(request, settings)}",
                  settings.login_rate_limit, settings.login_rate_window_s, "sign-in attempts")
    password, now = body.password.get_secret_value(), app[CLOCK]()
    async with app[DATABASE].acquire() as conn:
        found = await credentials.by_email(conn, body.email)
        wait = found.lockout_wait(now) if found is not None else None
        if wait is not None:
            await verify_password(password, None, settings.bcrypt_rounds)  # same cost
            await _sign_in_failed(request, body.email, found, "locked")
            raise _locked(wait)
        hashed = found.password_hash if found is not None else None
        ok = await verify_password(password, hashed, settings.bcrypt_rounds)
        if not ok or found is None or not found.active:
            locked = None
            if found is not None and found.active:
                locked = await credentials.record_failure(
                    conn, found.account_id, now, threshold=settings.lockout_threshold,
                    base_s=settings.lockout_base_s, max_s=settings.lockout_max_s,
                )
            reason = ("unknown_email" if found is None else
                      "inactive" if not found.active else "wrong_password")
            await _sign_in_failed(request, body.email, found, reason)
            if found is not None and locked is not None and locked > now:
                await record_for(request, Kind.LOCKOUT, account_id=found.account_id,
                                 until=locked.isoformat())
            raise _refused("The email or password is wrong.")
        await credentials.record_success(conn, found.account_id)
        tokens = await sign_in(settings, conn, found.account_id, found.role)
    return _json(tokens)


async def _sign_in_failed(request: web.Request, email: str,
                          found: credentials.Credentials | None, reason: str) -> None:
    """A security event naming the account, or only a keyed hash of an unknown email."""
    if found is not None:
        await record_for(request, Kind.LOGIN_FAILED, account_id=found.account_id,
                         reason=reason)
    else:
        await record_for(request, Kind.LOGIN_FAILED, reason=reason,
                         subject=subject_of(request.app[SETTINGS], email))


@auth_api.post("/api/v1/auth/refresh", summary="Trade a refresh token for new tokens",
               body=Refresh, response=Tokens, status=200, problems=RATE_LIMITED)
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
        except sessions.RefreshReused as reused:  # a stolen copy: its family is revoked
            await record_for(request, Kind.REFRESH_REUSE, account_id=reused.account_id)
            raise _refused("The refresh token is invalid, expired or revoked.") from None
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
               body=GoogleSignIn, response=Tokens, status=200,
               problems={**RATE_LIMITED, 503: "Google's keys cannot be fetched: retry later"})
async def post_google(request: web.Request, body: GoogleSignIn) -> web.Response:
    app, settings = request.app, request.app[SETTINGS]
    await enforce(app[LIMITER], f"login:ip:{client_ip(request, settings)}",
                  settings.login_rate_limit, settings.login_rate_window_s, "sign-in attempts")
    try:
        identity = await app[GOOGLE].verify(body.id_token.get_secret_value())
    except InvalidGoogleToken:
        await record_for(request, Kind.LOGIN_FAILED, reason="google_token_invalid")
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
    """The account this Google identity signs into: the one linked to its subject; else
    the verified customer account holding its email (linked now); else a new account,
    which takes the address from an unverified claim. Never a staff account found by email;
    never an account while it is locked."""
    app = request.app
    async with app[DATABASE].acquire() as conn:
        linked = await credentials.by_google_subject(conn, identity.subject)
        holder = None if linked else await credentials.email_owner(conn, identity.email)
    if linked is not None:
        await _not_locked(app, linked)
        await _vouch(request, linked, identity.email)
        return linked
    if holder is not None:
        account = await app[REPOSITORY].get(holder, cls=Account)
        if not account.is_customer:
            raise Problem(409, "This email belongs to a staff account, which is never linked"
                          " to Google by email: sign in with its password.", title="Not linked")
        if account.email_verified:
            await _not_locked(app, holder)
            await _link(request, holder, identity.subject)
            return holder
    return await _google_sign_up(request, identity, consent)


async def _not_locked(app: web.Application, account_id: UUID) -> None:
    async with app[DATABASE].acquire() as conn:
        found = await credentials.by_id(conn, account_id)
    wait = found.lockout_wait(app[CLOCK]()) if found is not None else None
    if wait is not None:
        raise _locked(wait)


async def _link(request: web.Request, account_id: UUID, subject: str) -> None:
    def link(account: Account) -> list[Statement]:
        account.link_google(subject, by_email=True)
        return [credentials.set_fields(account.id, google_subject=subject)]

    try:
        await change_account(request.app[REPOSITORY], account_id, link,
                             command_metadata(request))
    except DomainError:
        raise _refused("This account cannot be linked to Google.") from None


async def _vouch(request: web.Request, account_id: UUID, email: str) -> None:
    """Google vouches for the email of an account linked to it (if it is that email)."""
    async with request.app[DATABASE].acquire() as conn:
        found = await credentials.by_id(conn, account_id)
    if found is None or found.email_verified:
        return

    def vouch(account: Account) -> list[Statement]:
        if not account.verified_by_google(email):
            return []
        return [credentials.set_fields(account.id, email_verified=True),
                verification.revoke_for(account.id, account.email)]  # its link is moot

    await change_account(request.app[REPOSITORY], account_id, vouch,
                         command_metadata(request))


async def _google_sign_up(
    request: web.Request, identity: GoogleIdentity, consent: Consent | None
) -> UUID:
    """A new account, verified by Google; an unverified holder of the address gives it up."""
    if consent is None:
        raise Problem(422, "Creating an account needs consent to the privacy terms.",
                      title="Invalid request",
                      errors=[{"field": "body.consent", "message": "required to create an"
                               " account", "type": "missing"}])
    app, metadata, now = request.app, command_metadata(request), request.app[CLOCK]()
    repo = app[REPOSITORY]

    async def attempt() -> UUID:
        account, statements = new_account(
            email=identity.email, name=identity.name[:200], consent_version=consent.version,
            consent_at=now, google_subject=identity.subject, google_verified=True,
        )
        async with app[DATABASE].acquire() as conn:
            holder = await unverified_holder(repo, conn, account.email, account.id)
        await save_claiming(app, account, statements, holder, BY_GOOGLE, metadata)
        return account.id

    return await retry_on_conflict(attempt)


# -- account commands ----------------------------------------------------------------


@api.put("/api/v1/accounts/{id}/profile",
         summary="Change name or phone; request an email change (effective once verified)",
         body=ChangeProfile, response=ProfileChangeResult, problems=MAY_NOT_MANAGE)
async def put_account_profile(request: web.Request, body: ChangeProfile) -> web.Response:
    principal, account_id = require_principal(request), path_uuid(request)
    reach(principal, account_id)
    app, now = request.app, request.app[CLOCK]()
    if body.email is not None:
        await limit_links(request, account_id)
        async with app[DATABASE].acquire() as conn:  # a verified or staff holder: 409 now
            await unverified_holder(app[REPOSITORY], conn, body.email, account_id)
    sent = False

    def change(account: Account) -> list[Statement]:
        nonlocal sent
        may_manage(principal, account)
        account.change_profile(name=body.name, phone=body.phone)
        statements = (request_change(app[SETTINGS], account, body.email, now)
                      if body.email is not None else [])
        sent = bool(statements)
        return statements

    result = await change_account(app[REPOSITORY], account_id, change,
                                  command_metadata(request))
    return command_response(result, {"id": str(account_id), "email_verification_sent": sent},
                            status=200)


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
          response=AccountCommandResult, status=200, problems=MAY_NOT_MANAGE)
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
