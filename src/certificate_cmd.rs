//! `keelson certificate`: the leaf certificates of a server's data dir.

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::{Args, Subcommand};
use keelson_apiserver::pki;

#[derive(Args, Debug)]
pub struct CertificateArgs {
    #[command(subcommand)]
    command: CertificateCommand,
}

#[derive(Subcommand, Debug)]
enum CertificateCommand {
    /// Issue every leaf certificate of the data dir anew (the CAs and keys of tokens are
    /// kept). A running server presents the new certificates from its next handshake on; the
    /// old ones stay valid until they expire.
    Rotate(DataDir),
    /// List the data dir's certificates and when each expires.
    Check(DataDir),
    /// Create the cluster CA, the store CA and the ServiceAccount signing key in a data dir
    /// (keeping those that exist). For a cluster bootstrapped with --initial-cluster, copy
    /// `pki/ca.*`, `pki/service-account.key` and `pki/etcd/ca.*` of one data dir into the
    /// others before their first start.
    Ca(DataDir),
}

#[derive(Args, Debug)]
struct DataDir {
    /// The server's data dir.
    #[arg(long, default_value = "default.keelson")]
    data_dir: PathBuf,
}

pub fn run(args: CertificateArgs) -> Result<()> {
    match args.command {
        CertificateCommand::Rotate(d) => rotate(&d.data_dir),
        CertificateCommand::Check(d) => check(&d.data_dir),
        CertificateCommand::Ca(d) => {
            let sans = pki::default_sans(&[]);
            pki::Pki::ensure(&d.data_dir, &sans)?;
            pki::EtcdPki::ensure(&d.data_dir, &sans)?;
            for f in pki::SHARED_FILES {
                println!("{}", d.data_dir.join("pki").join(f).display());
            }
            Ok(())
        }
    }
}

fn rotate(data_dir: &std::path::Path) -> Result<()> {
    anyhow::ensure!(
        data_dir.join("pki").join("ca.crt").exists(),
        "{} holds no cluster certificates (pki/ca.crt); is it a server's --data-dir?",
        data_dir.display()
    );
    let written = pki::reissue_leaves(data_dir, true)?;
    for f in &written {
        println!("rotated {}", f.display());
    }
    // The admin kubeconfig carries the admin certificate itself.
    let kubeconfig = data_dir.join("admin.kubeconfig");
    if let Some(old) = read_optional(&kubeconfig)? {
        let server = old
            .lines()
            .find_map(|l| l.trim().strip_prefix("server: "))
            .context("admin.kubeconfig names no server")?
            .to_string();
        let p = pki::Pki::ensure(data_dir, &[])?;
        p.write_kubeconfig(&kubeconfig, &server)?;
        println!("rewrote {}", kubeconfig.display());
    }
    Ok(())
}

fn read_optional(path: &std::path::Path) -> Result<Option<String>> {
    match std::fs::read_to_string(path) {
        Ok(s) => Ok(Some(s)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
    }
}

fn check(data_dir: &std::path::Path) -> Result<()> {
    let certs = pki::certificates(data_dir)?;
    anyhow::ensure!(
        !certs.is_empty(),
        "no certificates in {}",
        data_dir.join("pki").display()
    );
    println!("{:<52} {:<36} EXPIRES", "FILE", "SUBJECT");
    for c in certs {
        println!("{:<52} {:<36} {}", c.path.display(), c.subject, c.not_after);
    }
    Ok(())
}
