"""``/api/v1/users``, ``/api/v1/organizations`` and ``/api/v1/auth/token``."""

from __future__ import annotations

from litestar import Controller, get, post
from litestar.di import NamedDependency
from litestar.params import FromPath, JSONBody
from litestar.status_codes import HTTP_201_CREATED

from whatsgate.adapters.http.auth import admin_only, operator_only
from whatsgate.adapters.http.errors import error_responses
from whatsgate.adapters.http.schemas import (
    ApiKeyOut,
    CreateOrganizationIn,
    CreateUserIn,
    NewKeyIn,
    NewOrganizationOut,
    NewUserOut,
    TokenOut,
    UserList,
    UserOut,
)
from whatsgate.domain.auth import Principal
from whatsgate.domain.organization import Role
from whatsgate.domain.session import iso
from whatsgate.usecases.auth import (
    CreateOrganization,
    CreateOrganizationCommand,
    CreateUser,
    CreateUserCommand,
    IssueApiKey,
    IssueApiKeyCommand,
    IssueToken,
    ListUsers,
)


class UserController(Controller):
    path = "/users"
    tags = ["Users"]
    guards = [admin_only]

    @post(
        "/",
        summary="Create a user",
        description="An admin or an agent of the caller's organization, with an API key shown "
        "once. Admins only.",
        status_code=HTTP_201_CREATED,
        responses=error_responses(403, 409),
    )
    async def create(
        self,
        data: JSONBody[CreateUserIn],
        principal: NamedDependency[Principal],
        create_user: NamedDependency[CreateUser],
    ) -> NewUserOut:
        created = await create_user(
            CreateUserCommand(
                organization_id=principal.organization_id,
                name=data.name,
                email=data.email,
                role=Role(data.role),
            )
        )
        user = UserOut.of(created.user)
        return NewUserOut(
            id=user.id,
            organization_id=user.organization_id,
            name=user.name,
            email=user.email,
            role=user.role,
            api_key=created.api_key,
        )

    @get("/", summary="List users", description="Admins only.", responses=error_responses(403))
    async def list_users(
        self, principal: NamedDependency[Principal], list_users: NamedDependency[ListUsers]
    ) -> UserList:
        users = await list_users(principal.organization_id)
        return UserList(items=[UserOut.of(u) for u in users])

    @post(
        "/{user_id:str}/api-keys",
        summary="Another API key for a user",
        description="Admins only; the key is shown once (only its hash is stored).",
        status_code=HTTP_201_CREATED,
        responses=error_responses(403),
    )
    async def new_key(
        self,
        user_id: FromPath[str],
        data: JSONBody[NewKeyIn],
        principal: NamedDependency[Principal],
        issue_api_key: NamedDependency[IssueApiKey],
    ) -> ApiKeyOut:
        key = await issue_api_key(
            IssueApiKeyCommand(
                organization_id=principal.organization_id, user_id=user_id, name=data.name
            )
        )
        return ApiKeyOut(user_id=user_id, name=data.name, api_key=key)


class OrganizationController(Controller):
    path = "/organizations"
    tags = ["Organizations"]
    guards = [operator_only]

    @post(
        "/",
        summary="Create an organization",
        description="A new tenant with its first admin, whose API key is shown once. Only the "
        "server's operator (the bootstrap admin key) may do it.",
        status_code=HTTP_201_CREATED,
        responses=error_responses(403, 409),
    )
    async def create(
        self,
        data: JSONBody[CreateOrganizationIn],
        create_organization: NamedDependency[CreateOrganization],
    ) -> NewOrganizationOut:
        created = await create_organization(
            CreateOrganizationCommand(
                name=data.name, admin_name=data.admin_name, admin_email=data.admin_email
            )
        )
        return NewOrganizationOut(
            id=created.organization.id,
            name=created.organization.name,
            admin_user_id=created.admin.id,
            admin_api_key=created.admin_api_key,
        )


class TokenController(Controller):
    path = "/auth"
    tags = ["Auth"]

    @post(
        "/token",
        summary="A short-lived bearer token",
        description="For browsers and socket.io clients: acts as the caller, expires soon.",
        status_code=HTTP_201_CREATED,
        responses=error_responses(),
    )
    async def token(
        self, principal: NamedDependency[Principal], issue_token: NamedDependency[IssueToken]
    ) -> TokenOut:
        issued = await issue_token(principal)
        return TokenOut(
            token=issued.token, token_type="bearer", expires_at=iso(issued.expires_at) or ""
        )
