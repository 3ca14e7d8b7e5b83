//! Certificates (rcgen): an operator CA, the server's certificate, and edges' client
//! certificates issued from that CA — a new key pair, or the public key of the edge's
//! CSR (whose requested names are ignored: an edge certificate names its edge and
//! nothing else).

use std::path::Path;

use rcgen::{
    BasicConstraints, CertificateParams, CertificateSigningRequestParams, DistinguishedName,
    DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair, KeyUsagePurpose, SanType, SerialNumber,
};
use time::{Duration, OffsetDateTime};

use crate::listen::edge_uri;

#[derive(Debug, thiserror::Error)]
pub enum PkiError {
    #[error("cannot read {0}: {1}")]
    Read(String, std::io::Error),
    #[error("{0}: {1}")]
    Bad(String, String),
    #[error("the certificate signing request is not usable: {0}")]
    Csr(String),
}

/// A CA's certificate and key, able to sign.
pub struct Ca {
    pub cert_pem: String,
    issuer: Issuer<'static, KeyPair>,
}

/// A certificate made here, with its key when the key was made here too.
#[derive(Debug, Clone)]
pub struct Issued {
    pub cert_pem: String,
    pub key_pem: Option<String>,
    /// Hex, as [`crate::listen::PeerCert::serial`] reads it back.
    pub serial: String,
    pub not_after: OffsetDateTime,
}

fn serial() -> (SerialNumber, String) {
    // 16 random bytes, the top bit clear: a positive integer (RFC 5280 §4.1.2.2).
    let mut b: [u8; 16] = rand::random();
    b[0] &= 0x7f;
    b[0] |= 0x01;
    (SerialNumber::from_slice(&b), hex::encode(b))
}

fn name(cn: &str) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    dn.push(DnType::OrganizationName, "cic");
    dn.push(DnType::CommonName, cn);
    dn
}

fn bad(what: &str) -> impl Fn(rcgen::Error) -> PkiError + '_ {
    move |e| PkiError::Bad(what.to_string(), e.to_string())
}

impl Ca {
    /// A new CA valid for `days` (ECDSA P-256).
    pub fn generate(common_name: &str, days: i64) -> Result<(Ca, String), PkiError> {
        let key = KeyPair::generate().map_err(bad("CA key"))?;
        let mut p = CertificateParams::default();
        p.distinguished_name = name(common_name);
        p.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        p.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        p.serial_number = Some(serial().0);
        let now = OffsetDateTime::now_utc();
        p.not_before = now - Duration::minutes(5);
        p.not_after = now + Duration::days(days);
        let cert = p.self_signed(&key).map_err(bad("CA"))?;
        let key_pem = key.serialize_pem();
        let cert_pem = cert.pem();
        let issuer = Issuer::new(p, key);
        Ok((Ca { cert_pem, issuer }, key_pem))
    }

    /// The CA of these PEM files.
    pub fn load(cert: &Path, key: &Path) -> Result<Ca, PkiError> {
        let read = |p: &Path| {
            std::fs::read_to_string(p).map_err(|e| PkiError::Read(p.display().to_string(), e))
        };
        let cert_pem = read(cert)?;
        let key = KeyPair::from_pem(&read(key)?).map_err(bad(&key.display().to_string()))?;
        let issuer =
            Issuer::from_ca_cert_pem(&cert_pem, key).map_err(bad(&cert.display().to_string()))?;
        Ok(Ca { cert_pem, issuer })
    }

    fn sign(
        &self,
        mut p: CertificateParams,
        days: i64,
        key: Option<KeyPair>,
        csr: Option<&str>,
    ) -> Result<Issued, PkiError> {
        let (sn, hex) = serial();
        p.serial_number = Some(sn);
        let now = OffsetDateTime::now_utc();
        p.not_before = now - Duration::minutes(5);
        p.not_after = now + Duration::days(days);
        p.use_authority_key_identifier_extension = true;
        let not_after = p.not_after;
        let cert = match (key.as_ref(), csr) {
            (_, Some(csr)) => {
                let mut req = CertificateSigningRequestParams::from_pem(csr)
                    .map_err(|e| PkiError::Csr(e.to_string()))?;
                // Only the key comes from the request; every name and use is ours.
                req.params = p;
                req.signed_by(&self.issuer).map_err(bad("certificate"))?
            }
            (Some(k), None) => p.signed_by(k, &self.issuer).map_err(bad("certificate"))?,
            (None, None) => return Err(PkiError::Csr("no key and no request".into())),
        };
        Ok(Issued {
            cert_pem: cert.pem(),
            key_pem: key.map(|k| k.serialize_pem()),
            serial: hex,
            not_after,
        })
    }

    /// A server certificate for these DNS names and IP addresses.
    pub fn issue_server(&self, names: &[String], days: i64) -> Result<Issued, PkiError> {
        let mut p = CertificateParams::default();
        p.distinguished_name = name(names.first().map_or("cic server", |n| n.as_str()));
        for n in names {
            p.subject_alt_names
                .push(match n.parse::<std::net::IpAddr>() {
                    Ok(ip) => SanType::IpAddress(ip),
                    Err(_) => SanType::DnsName(
                        n.clone()
                            .try_into()
                            .map_err(|e: rcgen::Error| PkiError::Bad(n.clone(), e.to_string()))?,
                    ),
                });
        }
        p.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        let key = KeyPair::generate().map_err(bad("key"))?;
        self.sign(p, days, Some(key), None)
    }

    /// A client certificate for edge `edge_id`: for the public key of `csr` (PEM) when
    /// given, else for a key pair made here.
    pub fn issue_edge(
        &self,
        edge_id: &str,
        csr: Option<&str>,
        days: i64,
    ) -> Result<Issued, PkiError> {
        let mut p = CertificateParams::default();
        p.distinguished_name = name(&format!("edge {edge_id}"));
        p.subject_alt_names =
            vec![SanType::URI(edge_uri(edge_id).try_into().map_err(
                |e: rcgen::Error| PkiError::Bad(edge_id.into(), e.to_string()),
            )?)];
        p.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        let key = match csr {
            Some(_) => None,
            None => Some(KeyPair::generate().map_err(bad("key"))?),
        };
        self.sign(p, days, key, csr)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::listen::describe_cert;
    use rustls::pki_types::{CertificateDer, pem::PemObject};

    #[test]
    fn an_edge_certificate_names_its_edge_and_its_serial_reads_back() {
        let (ca, _) = Ca::generate("test CA", 1).expect("ca");
        let issued = ca.issue_edge("ed0123456789", None, 1).expect("issue");
        let der = CertificateDer::from_pem_slice(issued.cert_pem.as_bytes()).expect("pem");
        let c = describe_cert(&der).expect("parse");
        assert_eq!(c.edge_id.as_deref(), Some("ed0123456789"));
        assert_eq!(c.serial, issued.serial);
        assert!(issued.key_pem.is_some());
    }

    #[test]
    fn a_csr_gives_only_its_key_not_its_names() {
        let (ca, _) = Ca::generate("test CA", 1).expect("ca");
        let key = KeyPair::generate().expect("key");
        let mut p = CertificateParams::new(vec!["evil.example".to_string()]).expect("params");
        p.subject_alt_names
            .push(SanType::URI(edge_uri("edOTHER").try_into().expect("uri")));
        let csr = p.serialize_request(&key).expect("csr").pem().expect("pem");
        let issued = ca.issue_edge("edMINE", Some(&csr), 1).expect("issue");
        assert!(issued.key_pem.is_none());
        let der = CertificateDer::from_pem_slice(issued.cert_pem.as_bytes()).expect("pem");
        let (_, x) = x509_parser::parse_x509_certificate(&der).expect("x509");
        let names: Vec<String> = x
            .subject_alternative_name()
            .expect("san")
            .expect("san")
            .value
            .general_names
            .iter()
            .map(|n| n.to_string())
            .collect();
        assert_eq!(names, vec![format!("URI({})", edge_uri("edMINE"))]);
        assert_eq!(
            x.public_key().subject_public_key.data.as_ref(),
            key.public_key_raw()
        );
        let e = ca.issue_edge("edMINE", Some("not a csr"), 1).unwrap_err();
        assert!(e.to_string().contains("certificate signing request"), "{e}");
    }
}
