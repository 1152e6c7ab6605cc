//! The cluster's certificates: a CA, the apiserver's serving certificate, an admin client
//! certificate and the admin kubeconfig, created in the data dir on first start.

use std::fs;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use base64::Engine as _;
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, SanType,
};

use crate::error::{ApiError, Result};

/// The admin identity (Kubernetes' convention: the `system:masters` group is all-powerful).
pub const ADMIN_USER: &str = "kubernetes-admin";
pub const ADMIN_GROUP: &str = "system:masters";

/// PEM material of the cluster.
#[derive(Clone, Debug)]
pub struct Pki {
    pub dir: PathBuf,
    pub ca_cert: String,
    pub server_cert: String,
    pub server_key: String,
    pub admin_cert: String,
    pub admin_key: String,
    /// The apiserver's client certificate for kubelets.
    pub kubelet_client_cert: String,
    pub kubelet_client_key: String,
    /// The key ServiceAccount tokens are signed with (P-256, PKCS#8), the same on every server.
    pub service_account_key: String,
}

/// The service-account key's file in `pki/`.
const SERVICE_ACCOUNT_KEY: &str = "service-account.key";

/// The leaf certificates issued from the CA (removed when the CA changes, so they are issued
/// anew).
const LEAVES: &[&str] = &[
    "apiserver.crt",
    "apiserver.key",
    "admin.crt",
    "admin.key",
    "apiserver-kubelet-client.crt",
    "apiserver-kubelet-client.key",
];

/// The identity the apiserver calls kubelets as.
pub const KUBELET_CLIENT_USER: &str = "kube-apiserver-kubelet-client";

fn err(what: &str, e: impl std::fmt::Display) -> ApiError {
    ApiError::internal(format!("{what}: {e}"))
}

pub(crate) fn write_private(path: &Path, data: &str) -> Result<()> {
    use std::os::unix::fs::OpenOptionsExt as _;
    let tmp = path.with_extension("tmp");
    let mut f = fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(|e| err(&format!("writing {}", tmp.display()), e))?;
    f.write_all(data.as_bytes())
        .and_then(|_| f.sync_all())
        .map_err(|e| err(&format!("writing {}", tmp.display()), e))?;
    fs::rename(&tmp, path).map_err(|e| err(&format!("renaming {}", tmp.display()), e))
}

pub(crate) fn read(path: &Path) -> Result<Option<String>> {
    match fs::read_to_string(path) {
        Ok(s) => Ok(Some(s)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(err(&format!("reading {}", path.display()), e)),
    }
}

fn validity(params: &mut CertificateParams, days: i64) {
    let start = time::OffsetDateTime::now_utc();
    params.not_before = start - time::Duration::hours(1);
    params.not_after = start + time::Duration::days(days);
}

fn new_ca() -> Result<(String, String)> {
    let key = KeyPair::generate().map_err(|e| err("generating the CA key", e))?;
    let mut params = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, "keelson-ca");
    params.distinguished_name = dn;
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    validity(&mut params, 3650);
    let cert = params
        .self_signed(&key)
        .map_err(|e| err("signing the CA", e))?;
    Ok((cert.pem(), key.serialize_pem()))
}

fn issue(
    ca_cert: &str,
    ca_key: &str,
    cn: &str,
    orgs: &[&str],
    sans: &[String],
    server: bool,
) -> Result<(String, String)> {
    let ca_key = KeyPair::from_pem(ca_key).map_err(|e| err("loading the CA key", e))?;
    let issuer = Issuer::from_ca_cert_pem(ca_cert, ca_key)
        .map_err(|e| err("loading the CA certificate", e))?;
    let key = KeyPair::generate().map_err(|e| err("generating a key", e))?;
    let mut params = CertificateParams::new(Vec::<String>::new())
        .map_err(|e| err("certificate parameters", e))?;
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, cn);
    for o in orgs {
        dn.push(DnType::OrganizationName, *o);
    }
    params.distinguished_name = dn;
    for s in sans {
        let san = match s.parse::<std::net::IpAddr>() {
            Ok(ip) => SanType::IpAddress(ip),
            Err(_) => SanType::DnsName(
                s.clone()
                    .try_into()
                    .map_err(|e| err(&format!("invalid --tls-san {s:?}"), e))?,
            ),
        };
        params.subject_alt_names.push(san);
    }
    params.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    params.extended_key_usages = vec![if server {
        ExtendedKeyUsagePurpose::ServerAuth
    } else {
        ExtendedKeyUsagePurpose::ClientAuth
    }];
    params.use_authority_key_identifier_extension = true;
    validity(&mut params, 365);
    let cert = params
        .signed_by(&key, &issuer)
        .map_err(|e| err("signing a certificate", e))?;
    Ok((cert.pem(), key.serialize_pem()))
}

/// The SANs the serving certificate must carry.
pub fn default_sans(extra: &[String]) -> Vec<String> {
    let mut sans = vec![
        "localhost".to_string(),
        "127.0.0.1".to_string(),
        "kubernetes".into(),
        "kubernetes.default".into(),
        "kubernetes.default.svc".into(),
        "kubernetes.default.svc.cluster.local".into(),
    ];
    if let Ok(h) = fs::read_to_string("/proc/sys/kernel/hostname") {
        let h = h.trim().to_string();
        if !h.is_empty() && !sans.contains(&h) {
            sans.push(h);
        }
    }
    for s in extra {
        if !sans.contains(s) {
            sans.push(s.clone());
        }
    }
    sans
}

/// The DNS names and IPs of a certificate, as strings.
fn cert_sans(pem: &str) -> Option<Vec<String>> {
    let der = pem_der(pem)?;
    let (_, cert) = x509_parser::parse_x509_certificate(&der).ok()?;
    let ext = cert.subject_alternative_name().ok()??;
    Some(
        ext.value
            .general_names
            .iter()
            .filter_map(|n| match n {
                x509_parser::extensions::GeneralName::DNSName(d) => Some(d.to_string()),
                x509_parser::extensions::GeneralName::IPAddress(b) => match b.len() {
                    4 => Some(std::net::Ipv4Addr::new(b[0], b[1], b[2], b[3]).to_string()),
                    16 => {
                        let mut a = [0u8; 16];
                        a.copy_from_slice(b);
                        Some(std::net::Ipv6Addr::from(a).to_string())
                    }
                    _ => None,
                },
                _ => None,
            })
            .collect(),
    )
}

/// The DER bytes of the first PEM block.
pub fn pem_der(pem: &str) -> Option<Vec<u8>> {
    let body: String = pem
        .lines()
        .skip_while(|l| !l.starts_with("-----BEGIN"))
        .skip(1)
        .take_while(|l| !l.starts_with("-----END"))
        .collect();
    base64::engine::general_purpose::STANDARD.decode(body).ok()
}

impl Pki {
    /// Loads the cluster's certificates from `<data_dir>/pki`, creating what is missing. A
    /// serving certificate that lacks one of `sans` is reissued (the CA is kept).
    pub fn ensure(data_dir: &Path, sans: &[String]) -> Result<Pki> {
        let dir = data_dir.join("pki");
        fs::create_dir_all(&dir).map_err(|e| err(&format!("creating {}", dir.display()), e))?;
        let p = |n: &str| dir.join(n);
        let (ca_cert, ca_key) = match (read(&p("ca.crt"))?, read(&p("ca.key"))?) {
            (Some(c), Some(k)) => (c, k),
            _ => {
                let (c, k) = new_ca()?;
                write_private(&p("ca.key"), &k)?;
                write_private(&p("ca.crt"), &c)?;
                // A new CA invalidates every leaf certificate.
                for f in LEAVES {
                    let _ = fs::remove_file(p(f));
                }
                (c, k)
            }
        };
        let (server_cert, server_key) =
            match (read(&p("apiserver.crt"))?, read(&p("apiserver.key"))?) {
                (Some(c), Some(k))
                    if cert_sans(&c).is_some_and(|have| sans.iter().all(|s| have.contains(s))) =>
                {
                    (c, k)
                }
                _ => {
                    let (c, k) = issue(&ca_cert, &ca_key, "kube-apiserver", &[], sans, true)?;
                    write_private(&p("apiserver.key"), &k)?;
                    write_private(&p("apiserver.crt"), &c)?;
                    (c, k)
                }
            };
        let (admin_cert, admin_key) = match (read(&p("admin.crt"))?, read(&p("admin.key"))?) {
            (Some(c), Some(k)) => (c, k),
            _ => {
                let (c, k) = issue(&ca_cert, &ca_key, ADMIN_USER, &[ADMIN_GROUP], &[], false)?;
                write_private(&p("admin.key"), &k)?;
                write_private(&p("admin.crt"), &c)?;
                (c, k)
            }
        };
        let (kubelet_client_cert, kubelet_client_key) = match (
            read(&p("apiserver-kubelet-client.crt"))?,
            read(&p("apiserver-kubelet-client.key"))?,
        ) {
            (Some(c), Some(k)) => (c, k),
            _ => {
                let (c, k) = issue(
                    &ca_cert,
                    &ca_key,
                    KUBELET_CLIENT_USER,
                    &[ADMIN_GROUP],
                    &[],
                    false,
                )?;
                write_private(&p("apiserver-kubelet-client.key"), &k)?;
                write_private(&p("apiserver-kubelet-client.crt"), &c)?;
                (c, k)
            }
        };
        let service_account_key = match read(&p(SERVICE_ACCOUNT_KEY))? {
            Some(k) => k,
            None => {
                let k = crate::auth::token::new_key_pem()?;
                write_private(&p(SERVICE_ACCOUNT_KEY), &k)?;
                k
            }
        };
        Ok(Pki {
            dir,
            ca_cert,
            server_cert,
            server_key,
            admin_cert,
            admin_key,
            kubelet_client_cert,
            kubelet_client_key,
            service_account_key,
        })
    }

    /// Makes `<data_dir>/pki` sign ServiceAccount tokens with the cluster's key (a joining
    /// server's, as the join answered it).
    pub fn install_service_account_key(data_dir: &Path, key: &str) -> Result<()> {
        let dir = data_dir.join("pki");
        fs::create_dir_all(&dir).map_err(|e| err(&format!("creating {}", dir.display()), e))?;
        write_private(&dir.join(SERVICE_ACCOUNT_KEY), key)
    }

    /// Makes `<data_dir>/pki` use the cluster CA a joining server was given (the leaf
    /// certificates of another CA are removed; [`Pki::ensure`] then issues them from this one).
    pub fn install_ca(data_dir: &Path, ca_cert: &str, ca_key: &str) -> Result<()> {
        let dir = data_dir.join("pki");
        fs::create_dir_all(&dir).map_err(|e| err(&format!("creating {}", dir.display()), e))?;
        if read(&dir.join("ca.crt"))?.as_deref() == Some(ca_cert)
            && read(&dir.join("ca.key"))?.as_deref() == Some(ca_key)
        {
            return Ok(());
        }
        for f in LEAVES {
            let _ = fs::remove_file(dir.join(f));
        }
        write_private(&dir.join("ca.key"), ca_key)?;
        write_private(&dir.join("ca.crt"), ca_cert)
    }

    /// Issues a client certificate signed by the cluster CA (for tests and future users).
    pub fn issue_client(&self, user: &str, groups: &[&str]) -> Result<(String, String)> {
        let ca_key = read(&self.dir.join("ca.key"))?
            .ok_or_else(|| ApiError::internal("the CA key is missing"))?;
        issue(&self.ca_cert, &ca_key, user, groups, &[], false)
    }

    /// An admin kubeconfig for `server` (e.g. `https://127.0.0.1:6443`).
    pub fn kubeconfig(&self, server: &str) -> String {
        kubeconfig(
            server,
            &self.ca_cert,
            "admin",
            &self.admin_cert,
            &self.admin_key,
        )
    }

    /// Writes the admin kubeconfig to `path` (0600).
    pub fn write_kubeconfig(&self, path: &Path, server: &str) -> Result<()> {
        write_private(path, &self.kubeconfig(server))
    }
}

/// A kubeconfig for `server` trusting `ca_cert`, as the client certificate `cert`/`key`.
pub fn kubeconfig(server: &str, ca_cert: &str, user: &str, cert: &str, key: &str) -> String {
    let b = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
    format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: keelson\n  cluster:\n    server: {server}\n    certificate-authority-data: {}\nusers:\n- name: {user}\n  user:\n    client-certificate-data: {}\n    client-key-data: {}\ncontexts:\n- name: keelson\n  context:\n    cluster: keelson\n    user: {user}\n    namespace: default\ncurrent-context: keelson\n",
        b(ca_cert),
        b(cert),
        b(key)
    )
}

/// Writes a private file (0600, replaced atomically): kubeconfigs with keys.
pub fn write_secret_file(path: &Path, data: &str) -> Result<()> {
    write_private(path, data)
}

/// User name (CN) and groups (O) of a client certificate.
pub fn identity(der: &[u8]) -> Option<(String, Vec<String>)> {
    let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
    let subject = cert.subject();
    let cn = subject
        .iter_common_name()
        .next()?
        .as_str()
        .ok()?
        .to_string();
    let groups = subject
        .iter_organization()
        .filter_map(|o| o.as_str().ok().map(str::to_string))
        .collect();
    Some((cn, groups))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn creates_once_and_reissues_for_new_sans() {
        let dir = tempfile::tempdir().expect("tempdir");
        let sans = default_sans(&["keelson.example".into()]);
        let a = Pki::ensure(dir.path(), &sans).expect("pki");
        let again = Pki::ensure(dir.path(), &sans).expect("pki again");
        assert_eq!(
            a.server_cert, again.server_cert,
            "kept when nothing changed"
        );
        assert_eq!(a.ca_cert, again.ca_cert);
        let have = cert_sans(&a.server_cert).expect("sans");
        assert!(
            have.contains(&"127.0.0.1".to_string())
                && have.contains(&"keelson.example".to_string()),
            "{have:?}"
        );
        let more = default_sans(&["10.0.0.7".into()]);
        let b = Pki::ensure(dir.path(), &more).expect("pki new san");
        assert_ne!(a.server_cert, b.server_cert, "reissued for a new SAN");
        assert_eq!(a.ca_cert, b.ca_cert, "same CA");
        let der = pem_der(&b.admin_cert).expect("der");
        assert_eq!(
            identity(&der),
            Some((ADMIN_USER.to_string(), vec![ADMIN_GROUP.to_string()]))
        );
        let kc = b.kubeconfig("https://127.0.0.1:6443");
        assert!(kc.contains("server: https://127.0.0.1:6443") && kc.contains("client-key-data: "));
        use std::os::unix::fs::PermissionsExt as _;
        let mode = fs::metadata(dir.path().join("pki/ca.key"))
            .expect("meta")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
}
