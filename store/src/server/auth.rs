//! `etcdserverpb.Auth`, and who a request comes from.
//!
//! With authentication on, a request names its user with a token from `Authenticate` (gRPC
//! metadata `token`) or, without one, with the common name of its TLS client certificate, as
//! etcd does. Permissions are checked by the services against the applied auth state.
//! Without authentication every request is allowed. The apiserver's in-process access does
//! not pass through here.

use std::sync::Arc;

use keelson_proto::authpb;
use keelson_proto::etcdserverpb::{self as pb, auth_server::Auth};
use tonic::{Request, Response, Status};

use crate::auth::{hash_password, Access, AuthRequest, AuthState, Perm, PermKind, ROOT};
use crate::error::EtcdError;
use crate::mvcc::KvState;
use crate::node::StoreNode;

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// The user of a request, when authentication is on (`None` when it is off).
fn caller<T>(auth: &AuthState, r: &Request<T>) -> Result<Option<String>, EtcdError> {
    if !auth.enabled {
        return Ok(None);
    }
    identity(auth, r).map(Some)
}

/// The user a request names, with its token or its client certificate.
pub(crate) fn identity<T>(auth: &AuthState, r: &Request<T>) -> Result<String, EtcdError> {
    if let Some(t) = r.metadata().get("token") {
        let t = t.to_str().map_err(|_| EtcdError::InvalidAuthToken)?;
        return auth
            .verify_token(t, now())
            .ok_or(EtcdError::InvalidAuthToken);
    }
    if let Some(cn) = r
        .peer_certs()
        .and_then(|c| c.first().and_then(|c| common_name(c)))
    {
        return Ok(cn);
    }
    Err(EtcdError::UserEmpty)
}

/// The common name of a DER certificate.
fn common_name(der: &[u8]) -> Option<String> {
    let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
    let cn = cert.subject().iter_common_name().next()?;
    cn.as_str().ok().map(str::to_string)
}

/// Checks that the caller of `r` may do what `allowed` says (given the applied state and the
/// user); always passes with authentication off.
pub(crate) fn authorize<T>(
    node: &StoreNode,
    r: &Request<T>,
    allowed: impl FnOnce(&KvState, &str) -> bool,
) -> Result<(), Status> {
    node.with_state(|st| match caller(&st.auth, r)? {
        None => Ok(()),
        Some(user) if allowed(st, &user) => Ok(()),
        Some(_) => Err(EtcdError::PermissionDenied),
    })
    .map_err(Status::from)
}

/// The caller of `r` holds the root role (or authentication is off).
pub(crate) fn admin<T>(node: &StoreNode, r: &Request<T>) -> Result<(), Status> {
    authorize(node, r, |st, u| st.auth.is_admin(u))
}

/// Any authenticated caller (or authentication is off).
pub(crate) fn authenticated<T>(node: &StoreNode, r: &Request<T>) -> Result<(), Status> {
    authorize(node, r, |_, _| true)
}

/// Whether `user` may run every operation of a transaction (compares read).
pub(crate) fn txn_permitted(auth: &AuthState, user: &str, t: &pb::TxnRequest) -> bool {
    use pb::request_op::Request as Op;
    let compares = t
        .compare
        .iter()
        .all(|c| auth.permitted(user, Access::Read, &c.key, &c.range_end));
    compares
        && t.success
            .iter()
            .chain(&t.failure)
            .all(|op| match &op.request {
                Some(Op::RequestRange(r)) => {
                    auth.permitted(user, Access::Read, &r.key, &r.range_end)
                }
                Some(Op::RequestPut(p)) => {
                    auth.permitted(user, Access::Write, &p.key, &[])
                        && (!p.prev_kv || auth.permitted(user, Access::Read, &p.key, &[]))
                }
                Some(Op::RequestDeleteRange(d)) => {
                    auth.permitted(user, Access::Write, &d.key, &d.range_end)
                        && (!d.prev_kv || auth.permitted(user, Access::Read, &d.key, &d.range_end))
                }
                Some(Op::RequestTxn(t)) => txn_permitted(auth, user, t),
                None => true,
            })
}

/// The caller of `r` may `need` every key under `<name>/` (a lock's or an election's).
pub(crate) fn on_prefix<T>(
    node: &StoreNode,
    r: &Request<T>,
    name: &[u8],
    need: Access,
) -> Result<(), Status> {
    let mut prefix = name.to_vec();
    prefix.push(b'/');
    let end = super::lock::prefix_end(&prefix);
    authorize(node, r, |st, u| st.auth.permitted(u, need, &prefix, &end))
}

pub struct AuthService {
    node: Arc<StoreNode>,
}

impl AuthService {
    pub fn new(node: Arc<StoreNode>) -> Self {
        AuthService { node }
    }

    async fn change(&self, r: AuthRequest) -> Result<pb::ResponseHeader, Status> {
        Ok(self.node.auth_change(r).await?)
    }

    async fn read<T>(
        &self,
        f: impl FnOnce(&AuthState) -> Result<T, EtcdError>,
    ) -> Result<T, Status> {
        Ok(self.node.auth_read(|st| f(&st.auth)).await??)
    }
}

fn password(plain: &str, hashed: &str, no_password: bool) -> Option<String> {
    if no_password {
        None
    } else if !hashed.is_empty() {
        Some(hashed.to_string())
    } else {
        Some(hash_password(plain))
    }
}

#[tonic::async_trait]
impl Auth for AuthService {
    async fn auth_enable(
        &self,
        r: Request<pb::AuthEnableRequest>,
    ) -> Result<Response<pb::AuthEnableResponse>, Status> {
        admin(&self.node, &r)?;
        let secret: [u8; 32] = rand::random();
        let header = self
            .change(AuthRequest::Enable {
                secret: secret.to_vec(),
            })
            .await?;
        Ok(Response::new(pb::AuthEnableResponse {
            header: Some(header),
        }))
    }

    async fn auth_disable(
        &self,
        r: Request<pb::AuthDisableRequest>,
    ) -> Result<Response<pb::AuthDisableResponse>, Status> {
        admin(&self.node, &r)?;
        let header = self.change(AuthRequest::Disable).await?;
        Ok(Response::new(pb::AuthDisableResponse {
            header: Some(header),
        }))
    }

    async fn auth_status(
        &self,
        _r: Request<pb::AuthStatusRequest>,
    ) -> Result<Response<pb::AuthStatusResponse>, Status> {
        let (enabled, auth_revision) = self.read(|a| Ok((a.enabled, a.revision))).await?;
        Ok(Response::new(pb::AuthStatusResponse {
            header: Some(self.node.header(0)),
            enabled,
            auth_revision,
        }))
    }

    async fn authenticate(
        &self,
        r: Request<pb::AuthenticateRequest>,
    ) -> Result<Response<pb::AuthenticateResponse>, Status> {
        let r = r.into_inner();
        let expires = now() + self.node.config.auth_token_ttl.as_secs();
        // The hash check takes a while: off the async threads.
        let node = self.node.clone();
        let token = tokio::task::spawn_blocking(move || {
            node.with_state(|st| {
                if !st.auth.enabled {
                    return Err(EtcdError::AuthNotEnabled);
                }
                if !st.auth.check_password(&r.name, &r.password) {
                    return Err(EtcdError::AuthFailed);
                }
                Ok(st.auth.issue_token(&r.name, expires))
            })
        })
        .await
        .map_err(|e| Status::internal(e.to_string()))??;
        Ok(Response::new(pb::AuthenticateResponse {
            header: Some(self.node.header(0)),
            token,
        }))
    }

    async fn user_add(
        &self,
        r: Request<pb::AuthUserAddRequest>,
    ) -> Result<Response<pb::AuthUserAddResponse>, Status> {
        admin(&self.node, &r)?;
        let r = r.into_inner();
        let no_password = r.options.is_some_and(|o| o.no_password);
        if r.name.is_empty() {
            return Err(EtcdError::UserEmpty.into());
        }
        let pw = tokio::task::spawn_blocking(move || {
            password(&r.password, &r.hashed_password, no_password)
        })
        .await
        .map_err(|e| Status::internal(e.to_string()))?;
        let header = self
            .change(AuthRequest::UserAdd {
                name: r.name,
                password: pw,
            })
            .await?;
        Ok(Response::new(pb::AuthUserAddResponse {
            header: Some(header),
        }))
    }

    async fn user_get(
        &self,
        r: Request<pb::AuthUserGetRequest>,
    ) -> Result<Response<pb::AuthUserGetResponse>, Status> {
        let name = r.get_ref().name.clone();
        authorize(&self.node, &r, |st, u| st.auth.is_admin(u) || u == name)?;
        let roles = self
            .read(|a| {
                a.users
                    .get(&name)
                    .map(|u| u.roles.iter().cloned().collect())
                    .ok_or(EtcdError::UserNotFound)
            })
            .await?;
        Ok(Response::new(pb::AuthUserGetResponse {
            header: Some(self.node.header(0)),
            roles,
        }))
    }

    async fn user_list(
        &self,
        r: Request<pb::AuthUserListRequest>,
    ) -> Result<Response<pb::AuthUserListResponse>, Status> {
        admin(&self.node, &r)?;
        let users = self.read(|a| Ok(a.users.keys().cloned().collect())).await?;
        Ok(Response::new(pb::AuthUserListResponse {
            header: Some(self.node.header(0)),
            users,
        }))
    }

    async fn user_delete(
        &self,
        r: Request<pb::AuthUserDeleteRequest>,
    ) -> Result<Response<pb::AuthUserDeleteResponse>, Status> {
        admin(&self.node, &r)?;
        let header = self
            .change(AuthRequest::UserDelete {
                name: r.into_inner().name,
            })
            .await?;
        Ok(Response::new(pb::AuthUserDeleteResponse {
            header: Some(header),
        }))
    }

    async fn user_change_password(
        &self,
        r: Request<pb::AuthUserChangePasswordRequest>,
    ) -> Result<Response<pb::AuthUserChangePasswordResponse>, Status> {
        let name = r.get_ref().name.clone();
        authorize(&self.node, &r, |st, u| st.auth.is_admin(u) || u == name)?;
        let r = r.into_inner();
        let pw =
            tokio::task::spawn_blocking(move || password(&r.password, &r.hashed_password, false))
                .await
                .map_err(|e| Status::internal(e.to_string()))?;
        let header = self
            .change(AuthRequest::UserChangePassword { name, password: pw })
            .await?;
        Ok(Response::new(pb::AuthUserChangePasswordResponse {
            header: Some(header),
        }))
    }

    async fn user_grant_role(
        &self,
        r: Request<pb::AuthUserGrantRoleRequest>,
    ) -> Result<Response<pb::AuthUserGrantRoleResponse>, Status> {
        admin(&self.node, &r)?;
        let r = r.into_inner();
        let header = self
            .change(AuthRequest::UserGrantRole {
                user: r.user,
                role: r.role,
            })
            .await?;
        Ok(Response::new(pb::AuthUserGrantRoleResponse {
            header: Some(header),
        }))
    }

    async fn user_revoke_role(
        &self,
        r: Request<pb::AuthUserRevokeRoleRequest>,
    ) -> Result<Response<pb::AuthUserRevokeRoleResponse>, Status> {
        admin(&self.node, &r)?;
        let r = r.into_inner();
        let header = self
            .change(AuthRequest::UserRevokeRole {
                name: r.name,
                role: r.role,
            })
            .await?;
        Ok(Response::new(pb::AuthUserRevokeRoleResponse {
            header: Some(header),
        }))
    }

    async fn role_add(
        &self,
        r: Request<pb::AuthRoleAddRequest>,
    ) -> Result<Response<pb::AuthRoleAddResponse>, Status> {
        admin(&self.node, &r)?;
        let header = self
            .change(AuthRequest::RoleAdd {
                name: r.into_inner().name,
            })
            .await?;
        Ok(Response::new(pb::AuthRoleAddResponse {
            header: Some(header),
        }))
    }

    async fn role_get(
        &self,
        r: Request<pb::AuthRoleGetRequest>,
    ) -> Result<Response<pb::AuthRoleGetResponse>, Status> {
        let role = r.get_ref().role.clone();
        authorize(&self.node, &r, |st, u| {
            st.auth.is_admin(u)
                || st
                    .auth
                    .users
                    .get(u)
                    .is_some_and(|u| u.roles.contains(&role))
        })?;
        let perm = self
            .read(|a| {
                let wire = |p: &Perm| authpb::Permission {
                    perm_type: p.kind.to_wire(),
                    key: p.key.clone(),
                    range_end: p.range_end.clone(),
                };
                match a.roles.get(&role) {
                    Some(r) => Ok(r.perms.iter().map(wire).collect()),
                    // etcd shows the root role as read-write on every key.
                    None if role == ROOT => Ok(vec![wire(&Perm {
                        kind: PermKind::ReadWrite,
                        key: Vec::new(),
                        range_end: vec![0],
                    })]),
                    None => Err(EtcdError::RoleNotFound),
                }
            })
            .await?;
        Ok(Response::new(pb::AuthRoleGetResponse {
            header: Some(self.node.header(0)),
            perm,
        }))
    }

    async fn role_list(
        &self,
        r: Request<pb::AuthRoleListRequest>,
    ) -> Result<Response<pb::AuthRoleListResponse>, Status> {
        admin(&self.node, &r)?;
        let roles = self.read(|a| Ok(a.roles.keys().cloned().collect())).await?;
        Ok(Response::new(pb::AuthRoleListResponse {
            header: Some(self.node.header(0)),
            roles,
        }))
    }

    async fn role_delete(
        &self,
        r: Request<pb::AuthRoleDeleteRequest>,
    ) -> Result<Response<pb::AuthRoleDeleteResponse>, Status> {
        admin(&self.node, &r)?;
        let header = self
            .change(AuthRequest::RoleDelete {
                name: r.into_inner().role,
            })
            .await?;
        Ok(Response::new(pb::AuthRoleDeleteResponse {
            header: Some(header),
        }))
    }

    async fn role_grant_permission(
        &self,
        r: Request<pb::AuthRoleGrantPermissionRequest>,
    ) -> Result<Response<pb::AuthRoleGrantPermissionResponse>, Status> {
        admin(&self.node, &r)?;
        let r = r.into_inner();
        let p = r
            .perm
            .ok_or_else(|| EtcdError::InvalidArgument("permission is not provided".into()))?;
        let kind = PermKind::from_wire(p.perm_type).ok_or_else(|| {
            EtcdError::InvalidArgument(format!("invalid permission type {}", p.perm_type))
        })?;
        let header = self
            .change(AuthRequest::RoleGrantPermission {
                name: r.name,
                perm: Perm {
                    kind,
                    key: p.key,
                    range_end: p.range_end,
                },
            })
            .await?;
        Ok(Response::new(pb::AuthRoleGrantPermissionResponse {
            header: Some(header),
        }))
    }

    async fn role_revoke_permission(
        &self,
        r: Request<pb::AuthRoleRevokePermissionRequest>,
    ) -> Result<Response<pb::AuthRoleRevokePermissionResponse>, Status> {
        admin(&self.node, &r)?;
        let r = r.into_inner();
        let header = self
            .change(AuthRequest::RoleRevokePermission {
                name: r.role,
                key: r.key,
                range_end: r.range_end,
            })
            .await?;
        Ok(Response::new(pb::AuthRoleRevokePermissionResponse {
            header: Some(header),
        }))
    }
}
