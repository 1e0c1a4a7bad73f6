//! HTTPS for clients that insist on it (MSAL and azure-identity accept only `https://`
//! authorities): a throw-away certificate authority and a server certificate for
//! `localhost`, `127.0.0.1` and `::1`, made at run time. Point the client at
//! [`SimTls::ca_cert_pem`] (e.g. `REQUESTS_CA_BUNDLE`, `SSL_CERT_FILE`).

use std::sync::Arc;

use rcgen::{BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair, KeyUsagePurpose};
use tokio_rustls::rustls;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

use crate::error::SimError;

/// A server certificate and the CA that signed it.
#[derive(Clone)]
pub struct SimTls {
    /// PEM of the CA certificate clients should trust.
    pub ca_cert_pem: String,
    /// PEM of the server certificate.
    pub cert_pem: String,
    cert_der: Vec<u8>,
    ca_der: Vec<u8>,
    key_der: Vec<u8>,
}

impl std::fmt::Debug for SimTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SimTls").finish_non_exhaustive()
    }
}

fn tls_err(e: impl std::fmt::Display) -> SimError {
    SimError::Tls(e.to_string())
}

impl SimTls {
    /// A new CA and a server certificate for localhost / 127.0.0.1 / ::1.
    pub fn self_signed() -> Result<SimTls, SimError> {
        let ca_key = KeyPair::generate().map_err(tls_err)?;
        let mut ca = CertificateParams::new(Vec::<String>::new()).map_err(tls_err)?;
        ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca.distinguished_name.push(DnType::CommonName, "calbridge simulator test CA (not trusted anywhere else)");
        ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign, KeyUsagePurpose::DigitalSignature];
        let ca_cert = ca.self_signed(&ca_key).map_err(tls_err)?;
        let key = KeyPair::generate().map_err(tls_err)?;
        let mut leaf =
            CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string(), "::1".to_string()])
                .map_err(tls_err)?;
        leaf.distinguished_name.push(DnType::CommonName, "localhost");
        leaf.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        leaf.key_usages = vec![KeyUsagePurpose::DigitalSignature, KeyUsagePurpose::KeyEncipherment];
        leaf.use_authority_key_identifier_extension = true;
        let cert = leaf.signed_by(&key, &ca_cert, &ca_key).map_err(tls_err)?;
        Ok(SimTls {
            ca_cert_pem: ca_cert.pem(),
            cert_pem: cert.pem(),
            cert_der: cert.der().to_vec(),
            ca_der: ca_cert.der().to_vec(),
            key_der: key.serialize_der(),
        })
    }

    pub(crate) fn server_config(&self) -> Result<Arc<rustls::ServerConfig>, SimError> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(tls_err)?
            .with_no_client_auth()
            .with_single_cert(
                vec![CertificateDer::from(self.cert_der.clone()), CertificateDer::from(self.ca_der.clone())],
                PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(self.key_der.clone())),
            )
            .map_err(tls_err)?;
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Arc::new(config))
    }
}
