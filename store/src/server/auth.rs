//! `etcdserverpb.Auth`: not implemented yet (the security work adds it). Authentication is off,
//! which `AuthStatus` reports truthfully; every other method answers UNIMPLEMENTED.

use std::sync::Arc;

use keelson_proto::etcdserverpb::{self as pb, auth_server::Auth};
use tonic::{Request, Response, Status};

use crate::node::StoreNode;

pub struct AuthService {
    node: Arc<StoreNode>,
}

impl AuthService {
    pub fn new(node: Arc<StoreNode>) -> Self {
        AuthService { node }
    }
}

fn unimplemented(method: &str) -> Status {
    Status::unimplemented(format!(
        "etcdserver: Auth.{method} is not implemented by keelson yet (authentication is disabled)"
    ))
}

/// Writes the `Auth` impl: `AuthStatus` answers, every listed method is UNIMPLEMENTED. (The
/// whole impl comes from the macro because `async_trait` must see the methods expanded.)
macro_rules! auth_impl {
    ($($name:ident: $req:ident => $resp:ident, $label:literal;)*) => {
        #[tonic::async_trait]
        impl Auth for AuthService {
            async fn auth_status(
                &self,
                _r: Request<pb::AuthStatusRequest>,
            ) -> Result<Response<pb::AuthStatusResponse>, Status> {
                Ok(Response::new(pb::AuthStatusResponse {
                    header: Some(self.node.header(0)),
                    enabled: false,
                    auth_revision: 0,
                }))
            }

            $(
                async fn $name(&self, _r: Request<pb::$req>) -> Result<Response<pb::$resp>, Status> {
                    Err(unimplemented($label))
                }
            )*
        }
    };
}

auth_impl! {
    auth_enable: AuthEnableRequest => AuthEnableResponse, "AuthEnable";
    auth_disable: AuthDisableRequest => AuthDisableResponse, "AuthDisable";
    authenticate: AuthenticateRequest => AuthenticateResponse, "Authenticate";
    user_add: AuthUserAddRequest => AuthUserAddResponse, "UserAdd";
    user_get: AuthUserGetRequest => AuthUserGetResponse, "UserGet";
    user_list: AuthUserListRequest => AuthUserListResponse, "UserList";
    user_delete: AuthUserDeleteRequest => AuthUserDeleteResponse, "UserDelete";
    user_change_password: AuthUserChangePasswordRequest => AuthUserChangePasswordResponse, "UserChangePassword";
    user_grant_role: AuthUserGrantRoleRequest => AuthUserGrantRoleResponse, "UserGrantRole";
    user_revoke_role: AuthUserRevokeRoleRequest => AuthUserRevokeRoleResponse, "UserRevokeRole";
    role_add: AuthRoleAddRequest => AuthRoleAddResponse, "RoleAdd";
    role_get: AuthRoleGetRequest => AuthRoleGetResponse, "RoleGet";
    role_list: AuthRoleListRequest => AuthRoleListResponse, "RoleList";
    role_delete: AuthRoleDeleteRequest => AuthRoleDeleteResponse, "RoleDelete";
    role_grant_permission: AuthRoleGrantPermissionRequest => AuthRoleGrantPermissionResponse, "RoleGrantPermission";
    role_revoke_permission: AuthRoleRevokePermissionRequest => AuthRoleRevokePermissionResponse, "RoleRevokePermission";
}
