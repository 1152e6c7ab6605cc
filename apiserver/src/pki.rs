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

/// A leaf certificate a server keeps in its data dir: `<stem>.crt` and `<stem>.key`.
struct Leaf {
    stem: &'static str,
    cn: &'static str,
    orgs: &'static [&'static str],
    usage: Usage,
    /// Carries the server's names (a serving certificate).
    named: bool,
}

/// The leaves of the cluster CA (`pki/`), removed when the CA changes so they are issued anew.
const LEAVES: &[Leaf] = &[
    Leaf {
        stem: "apiserver",
        cn: "kube-apiserver",
        orgs: &[],
        usage: Usage::Server,
        named: true,
    },
    Leaf {
        stem: "admin",
        cn: ADMIN_USER,
        orgs: &[ADMIN_GROUP],
        usage: Usage::Client,
        named: false,
    },
    Leaf {
        stem: "apiserver-kubelet-client",
        cn: KUBELET_CLIENT_USER,
        orgs: &[ADMIN_GROUP],
        usage: Usage::Client,
        named: false,
    },
];

/// What every server of one cluster shares, relative to `pki/`: copied to each data dir of a
/// statically bootstrapped cluster, sent to a server that joins.
pub const SHARED_FILES: &[&str] = &[
    "ca.crt",
    "ca.key",
    SERVICE_ACCOUNT_KEY,
    "etcd/ca.crt",
    "etcd/ca.key",
];

/// The store's own CA and leaves live in `pki/etcd/`, apart from the cluster CA (kubeadm's
/// layout): a certificate of the cluster CA, a kubelet's or a user's, opens nothing on the
/// store's ports.
pub const ETCD_DIR: &str = "etcd";
/// The user the store's client certificate names (etcd takes a certificate's CN as the user).
pub const ETCD_CLIENT_USER: &str = "root";

const ETCD_LEAVES: &[Leaf] = &[
    Leaf {
        stem: "server",
        cn: "keelson-etcd-server",
        orgs: &[],
        usage: Usage::Both,
        named: true,
    },
    Leaf {
        stem: "peer",
        cn: "keelson-etcd-peer",
        orgs: &[],
        usage: Usage::Both,
        named: true,
    },
    Leaf {
        stem: "client",
        cn: ETCD_CLIENT_USER,
        orgs: &[],
        usage: Usage::Client,
        named: false,
    },
];

/// Whether the certificate (PEM) ends within `days`; an unreadable one counts as ending.
pub fn expires_within(pem: &str, days: i64) -> bool {
    let Some(der) = pem_der(pem) else {
        return true;
    };
    let Ok((_, cert)) = x509_parser::parse_x509_certificate(&der) else {
        return true;
    };
    let end = cert.validity().not_after.timestamp();
    end < (time::OffsetDateTime::now_utc() + time::Duration::days(days)).unix_timestamp()
}

/// What to do with a leaf that exists.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Reissue {
    /// Keep it unless it lacks a name, is about to expire or does not load.
    IfNeeded,
    /// Issue it anew (rotation), with the names it had and the ones given.
    Always,
}

/// Makes `<dir>/<stem>.crt` a certificate of the CA for `leaf`; returns (cert, key, issued).
fn ensure_leaf(
    dir: &Path,
    leaf: &Leaf,
    ca: (&str, &str),
    sans: &[String],
    mode: Reissue,
) -> Result<(String, String, bool)> {
    let cert_path = dir.join(format!("{}.crt", leaf.stem));
    let key_path = dir.join(format!("{}.key", leaf.stem));
    let have = match (read(&cert_path)?, read(&key_path)?) {
        (Some(c), Some(k)) => Some((c, k)),
        _ => None,
    };
    let mut names: Vec<String> = if leaf.named {
        sans.to_vec()
    } else {
        Vec::new()
    };
    if let Some((c, k)) = &have {
        let had = cert_sans(c).unwrap_or_default();
        let covers = names.iter().all(|s| had.contains(s));
        if mode == Reissue::IfNeeded && covers && !expires_within(c, RENEW_BEFORE_DAYS) {
            return Ok((c.clone(), k.clone(), false));
        }
        if leaf.named {
            for s in had {
                if !names.contains(&s) {
                    names.push(s);
                }
            }
        }
    }
    let (c, k) = issue(ca.0, ca.1, leaf.cn, leaf.orgs, &names, leaf.usage)?;
    write_private(&key_path, &k)?;
    write_private(&cert_path, &c)?;
    Ok((c, k, true))
}

/// Reads `<dir>/ca.crt` and `ca.key`, creating a CA named `cn` (and dropping the leaves of
/// an earlier one) when they are missing.
fn ensure_ca(dir: &Path, cn: &str, leaves: &[Leaf]) -> Result<(String, String)> {
    fs::create_dir_all(dir).map_err(|e| err(&format!("creating {}", dir.display()), e))?;
    match (read(&dir.join("ca.crt"))?, read(&dir.join("ca.key"))?) {
        (Some(c), Some(k)) => Ok((c, k)),
        _ => {
            let (c, k) = new_ca(cn)?;
            write_private(&dir.join("ca.key"), &k)?;
            write_private(&dir.join("ca.crt"), &c)?;
            remove_leaves(dir, leaves);
            Ok((c, k))
        }
    }
}

fn remove_leaves(dir: &Path, leaves: &[Leaf]) {
    for l in leaves {
        for ext in ["crt", "key"] {
            let _ = fs::remove_file(dir.join(format!("{}.{ext}", l.stem)));
        }
    }
}

/// The store's certificates in `<data_dir>/pki/etcd`, as paths.
#[derive(Clone, Debug)]
pub struct EtcdPki {
    pub dir: PathBuf,
}

impl EtcdPki {
    /// The paths in `<data_dir>/pki/etcd`, whether or not the files exist yet.
    pub fn new(data_dir: &Path) -> EtcdPki {
        EtcdPki {
            dir: data_dir.join("pki").join(ETCD_DIR),
        }
    }

    pub fn ca(&self) -> PathBuf {
        self.dir.join("ca.crt")
    }
    /// The client port's serving certificate and key.
    pub fn server(&self) -> (PathBuf, PathBuf) {
        (self.dir.join("server.crt"), self.dir.join("server.key"))
    }
    /// The peer port's certificate, also presented when calling other members.
    pub fn peer(&self) -> (PathBuf, PathBuf) {
        (self.dir.join("peer.crt"), self.dir.join("peer.key"))
    }
    /// A client certificate for the operator (`keelson kv`, etcdctl), user `root`.
    pub fn client(&self) -> (PathBuf, PathBuf) {
        (self.dir.join("client.crt"), self.dir.join("client.key"))
    }

    /// Loads the store's CA and certificates, creating what is missing and renewing leaves that
    /// lack one of `sans` or expire within [`RENEW_BEFORE_DAYS`].
    pub fn ensure(data_dir: &Path, sans: &[String]) -> Result<EtcdPki> {
        let pki = EtcdPki::new(data_dir);
        let (ca_cert, ca_key) = ensure_ca(&pki.dir, "keelson-etcd-ca", ETCD_LEAVES)?;
        for leaf in ETCD_LEAVES {
            ensure_leaf(&pki.dir, leaf, (&ca_cert, &ca_key), sans, Reissue::IfNeeded)?;
        }
        Ok(pki)
    }

    /// Makes `<data_dir>/pki/etcd` use the store CA a joining server was given.
    pub fn install_ca(data_dir: &Path, ca_cert: &str, ca_key: &str) -> Result<()> {
        install_ca_in(
            &data_dir.join("pki").join(ETCD_DIR),
            ca_cert,
            ca_key,
            ETCD_LEAVES,
        )
    }
}

/// Installs a CA in `dir`, dropping the leaves of another one.
fn install_ca_in(dir: &Path, ca_cert: &str, ca_key: &str, leaves: &[Leaf]) -> Result<()> {
    fs::create_dir_all(dir).map_err(|e| err(&format!("creating {}", dir.display()), e))?;
    if read(&dir.join("ca.crt"))?.as_deref() == Some(ca_cert)
        && read(&dir.join("ca.key"))?.as_deref() == Some(ca_key)
    {
        return Ok(());
    }
    remove_leaves(dir, leaves);
    write_private(&dir.join("ca.key"), ca_key)?;
    write_private(&dir.join("ca.crt"), ca_cert)
}

/// A certificate of a data dir, for `keelson certificate check`.
#[derive(Clone, Debug)]
pub struct CertInfo {
    pub path: PathBuf,
    pub subject: String,
    /// RFC 3339.
    pub not_after: String,
}

/// The CAs and leaves of a data dir that exist.
pub fn certificates(data_dir: &Path) -> Result<Vec<CertInfo>> {
    let pki = data_dir.join("pki");
    let mut out = Vec::new();
    for (dir, leaves) in [(pki.clone(), LEAVES), (pki.join(ETCD_DIR), ETCD_LEAVES)] {
        let stems = std::iter::once("ca").chain(leaves.iter().map(|l| l.stem));
        for stem in stems {
            let path = dir.join(format!("{stem}.crt"));
            let Some(pem) = read(&path)? else { continue };
            let der = pem_der(&pem).ok_or_else(|| err(&path.display().to_string(), "not PEM"))?;
            let (_, cert) = x509_parser::parse_x509_certificate(&der)
                .map_err(|e| err(&path.display().to_string(), e))?;
            let end =
                time::OffsetDateTime::from_unix_timestamp(cert.validity().not_after.timestamp())
                    .map_err(|e| err(&path.display().to_string(), e))?;
            out.push(CertInfo {
                subject: cert.subject().to_string(),
                not_after: end
                    .format(&time::format_description::well_known::Rfc3339)
                    .map_err(|e| err("formatting a time", e))?,
                path,
            });
        }
    }
    Ok(out)
}

/// Issues the leaf certificates of a data dir anew: all of them (`rotate`), or those that
/// expire within [`RENEW_BEFORE_DAYS`]. Each keeps the names it had. Running servers present
/// the new certificates from their next handshake on. Returns the files written.
pub fn reissue_leaves(data_dir: &Path, rotate: bool) -> Result<Vec<PathBuf>> {
    let mode = if rotate {
        Reissue::Always
    } else {
        Reissue::IfNeeded
    };
    let mut written = Vec::new();
    let pki = data_dir.join("pki");
    for (dir, leaves) in [(pki.clone(), LEAVES), (pki.join(ETCD_DIR), ETCD_LEAVES)] {
        let (Some(ca_cert), Some(ca_key)) =
            (read(&dir.join("ca.crt"))?, read(&dir.join("ca.key"))?)
        else {
            continue;
        };
        for leaf in leaves {
            if read(&dir.join(format!("{}.crt", leaf.stem)))?.is_none() {
                continue;
            }
            if ensure_leaf(&dir, leaf, (&ca_cert, &ca_key), &[], mode)?.2 {
                written.push(dir.join(format!("{}.crt", leaf.stem)));
            }
        }
    }
    Ok(written)
}

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

fn new_ca(cn: &str) -> Result<(String, String)> {
    let key = KeyPair::generate().map_err(|e| err("generating the CA key", e))?;
    let mut params = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, cn);
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

/// What a leaf certificate is for (its extended key usages).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Usage {
    Server,
    Client,
    /// A store member's: it serves its peers and calls them.
    Both,
}

/// How long leaf certificates are valid.
const LEAF_DAYS: i64 = 365;
/// Leaf certificates this close to expiry are renewed (at start, and by the server's
/// renewal task).
pub const RENEW_BEFORE_DAYS: i64 = 30;

fn issue(
    ca_cert: &str,
    ca_key: &str,
    cn: &str,
    orgs: &[&str],
    sans: &[String],
    usage: Usage,
) -> Result<(String, String)> {
    issue_for(ca_cert, ca_key, cn, orgs, sans, usage, LEAF_DAYS)
}

fn issue_for(
    ca_cert: &str,
    ca_key: &str,
    cn: &str,
    orgs: &[&str],
    sans: &[String],
    usage: Usage,
    days: i64,
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
    params.extended_key_usages = match usage {
        Usage::Server => vec![ExtendedKeyUsagePurpose::ServerAuth],
        Usage::Client => vec![ExtendedKeyUsagePurpose::ClientAuth],
        Usage::Both => vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ],
    };
    params.use_authority_key_identifier_extension = true;
    validity(&mut params, days);
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
        let p = |n: &str| dir.join(n);
        let (ca_cert, ca_key) = ensure_ca(&dir, "keelson-ca", LEAVES)?;
        let ca = (ca_cert.as_str(), ca_key.as_str());
        let [server, admin, kubelet] =
            [0, 1, 2].map(|i| ensure_leaf(&dir, &LEAVES[i], ca, sans, Reissue::IfNeeded));
        let (server_cert, server_key, _) = server?;
        let (admin_cert, admin_key, _) = admin?;
        let (kubelet_client_cert, kubelet_client_key, _) = kubelet?;
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
        install_ca_in(&data_dir.join("pki"), ca_cert, ca_key, LEAVES)
    }

    /// Issues a client certificate signed by the cluster CA (for tests and future users).
    pub fn issue_client(&self, user: &str, groups: &[&str]) -> Result<(String, String)> {
        let ca_key = read(&self.dir.join("ca.key"))?
            .ok_or_else(|| ApiError::internal("the CA key is missing"))?;
        issue(&self.ca_cert, &ca_key, user, groups, &[], Usage::Client)
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

    fn serial(pem: &str) -> Vec<u8> {
        let der = pem_der(pem).expect("der");
        let (_, c) = x509_parser::parse_x509_certificate(&der).expect("x509");
        c.raw_serial().to_vec()
    }

    #[test]
    fn store_certificates_have_their_own_ca_and_are_renewed_and_rotated() {
        let dir = tempfile::tempdir().expect("tempdir");
        let sans = default_sans(&["10.1.2.3".into()]);
        let cluster = Pki::ensure(dir.path(), &sans).expect("pki");
        let etcd = EtcdPki::ensure(dir.path(), &sans).expect("etcd pki");
        let etcd_ca = fs::read_to_string(etcd.ca()).expect("etcd ca");
        assert_ne!(
            etcd_ca, cluster.ca_cert,
            "the store CA is not the cluster CA"
        );
        let read = |p: PathBuf| fs::read_to_string(p).expect("read");
        let peer = read(etcd.peer().0);
        assert!(cert_sans(&peer)
            .expect("sans")
            .contains(&"10.1.2.3".to_string()));
        let client = read(etcd.client().0);
        let der = pem_der(&client).expect("der");
        assert_eq!(
            identity(&der).map(|i| i.0).as_deref(),
            Some(ETCD_CLIENT_USER)
        );

        // Nothing is near expiry: a renewal pass writes nothing.
        assert!(reissue_leaves(dir.path(), false).expect("renew").is_empty());
        // A peer certificate 10 days from expiry is renewed, keeping its names.
        let key = fs::read_to_string(etcd.dir.join("ca.key")).expect("ca key");
        let (c, k) = issue_for(
            &etcd_ca,
            &key,
            "keelson-etcd-peer",
            &[],
            &["10.9.9.9".to_string()],
            Usage::Both,
            10,
        )
        .expect("short-lived");
        write_private(&etcd.peer().0, &c).expect("write");
        write_private(&etcd.peer().1, &k).expect("write");
        let renewed = reissue_leaves(dir.path(), false).expect("renew");
        assert_eq!(renewed, vec![etcd.peer().0]);
        let peer2 = read(etcd.peer().0);
        assert!(!expires_within(&peer2, RENEW_BEFORE_DAYS));
        assert!(cert_sans(&peer2)
            .expect("sans")
            .contains(&"10.9.9.9".to_string()));

        // Rotation issues every leaf anew; the CAs stay.
        let serials = || -> Vec<Vec<u8>> {
            [
                etcd.server().0,
                etcd.client().0,
                dir.path().join("pki/apiserver.crt"),
            ]
            .into_iter()
            .map(|p| serial(&read(p)))
            .collect()
        };
        let before = serials();
        let rotated = reissue_leaves(dir.path(), true).expect("rotate");
        assert_eq!(
            rotated.len(),
            LEAVES.len() + ETCD_LEAVES.len(),
            "{rotated:?}"
        );
        let after = serials();
        for (b, a) in before.iter().zip(&after) {
            assert_ne!(b, a, "a rotated certificate has a new serial");
        }
        assert_eq!(read(etcd.ca()), etcd_ca);
        let api = read(dir.path().join("pki/apiserver.crt"));
        assert!(
            cert_sans(&api)
                .expect("sans")
                .contains(&"10.1.2.3".to_string()),
            "names kept"
        );
        let listed = certificates(dir.path()).expect("list");
        assert_eq!(listed.len(), 2 + LEAVES.len() + ETCD_LEAVES.len());
    }
}
