//! Which resource types exist (discovery), for the controllers that act on every type: the
//! garbage collector and the namespace controller. Custom resources appear when their CRD
//! becomes established, so callers re-run this periodically.

use kube::api::ApiResource;
use kube::discovery::{verbs, Discovery, Scope};
use kube::Client;

/// A resource type that can be listed, watched and deleted.
#[derive(Clone, Debug)]
pub struct Res {
    pub ar: ApiResource,
    pub namespaced: bool,
}

impl Res {
    /// `group/version/plural` (unique).
    pub fn id(&self) -> String {
        format!("{}/{}", self.ar.api_version, self.ar.plural)
    }
}

/// Every type (preferred version of each group) with list, watch and delete verbs, except
/// events, which nothing owns and which are the most numerous objects.
pub async fn deletable(client: &Client) -> Result<Vec<Res>, kube::Error> {
    // metrics.k8s.io is read-only (made from kubelets at request time): nothing to collect,
    // and one unanswering group would fail the whole discovery.
    let discovery = Discovery::new(client.clone())
        .exclude(&["metrics.k8s.io"])
        .run()
        .await?;
    let mut out = Vec::new();
    for group in discovery.groups() {
        for (ar, caps) in group.recommended_resources() {
            if ar.plural == "events" {
                continue;
            }
            if !(caps.supports_operation(verbs::LIST)
                && caps.supports_operation(verbs::WATCH)
                && caps.supports_operation(verbs::DELETE))
            {
                continue;
            }
            out.push(Res {
                namespaced: matches!(caps.scope, Scope::Namespaced),
                ar,
            });
        }
    }
    Ok(out)
}
