//! TLS and mutual TLS on the gRPC port, with certificates made for the test.

mod common;

use common::{Harness, join_request, within};
use rcgen::{BasicConstraints, CertificateParams, ExtendedKeyUsagePurpose, IsCa, KeyPair};
use roomhooks_sdk::{App, Connection, RoomHooksClient, proto::PreRoomUserJoinRequest};
use tonic::transport::{Certificate, ClientTlsConfig, Identity};

/// A CA, a server certificate for "localhost", and a client certificate, as PEM.
struct Pki {
    ca: String,
    server: (String, String),
    client: (String, String),
    dir: tempfile::TempDir,
}

fn pki() -> Pki {
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca_key = KeyPair::generate().unwrap();
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let leaf = |name: &str, usage| {
        let mut params = CertificateParams::new(vec![name.to_owned()]).unwrap();
        params.extended_key_usages = vec![usage];
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &ca, &ca_key).unwrap();
        (cert.pem(), key.serialize_pem())
    };
    Pki {
        ca: ca.pem(),
        server: leaf("localhost", ExtendedKeyUsagePurpose::ServerAuth),
        client: leaf("backend", ExtendedKeyUsagePurpose::ClientAuth),
        dir: tempfile::tempdir().unwrap(),
    }
}

impl Pki {
    fn write(&self, name: &str, pem: &str) -> std::path::PathBuf {
        let path = self.dir.path().join(name);
        std::fs::write(&path, pem).unwrap();
        path
    }

    fn client_tls(&self, with_identity: bool) -> ClientTlsConfig {
        let tls = ClientTlsConfig::new()
            .ca_certificate(Certificate::from_pem(&self.ca))
            .domain_name("localhost");
        if with_identity {
            tls.identity(Identity::from_pem(&self.client.0, &self.client.1))
        } else {
            tls
        }
    }
}

/// A sidecar that requires client certificates from the test CA, and its `https://` URL.
async fn mutual_tls_sidecar(pki: &Pki) -> (Harness, String) {
    let (cert, key, ca) = (
        pki.write("server.pem", &pki.server.0),
        pki.write("server.key", &pki.server.1),
        pki.write("ca.pem", &pki.ca),
    );
    let h = Harness::start_with(|c| {
        c.tls_cert = Some(cert);
        c.tls_key = Some(key);
        c.tls_client_ca = Some(ca);
    })
    .await;
    let https = format!("https://{}", h.sidecar.local_addr());
    (h, https)
}

fn join() -> PreRoomUserJoinRequest {
    join_request("vera")
}

#[tokio::test]
async fn apps_and_backends_work_over_tls_and_plaintext_clients_are_refused() {
    let pki = pki();
    let (cert, key) = (
        pki.write("server.pem", &pki.server.0),
        pki.write("server.key", &pki.server.1),
    );
    let h = Harness::start_with(|c| {
        c.tls_cert = Some(cert);
        c.tls_key = Some(key);
    })
    .await;
    let https = format!("https://{}", h.sidecar.local_addr());
    let mut app = App::builder("secure")
        .tls(pki.client_tls(false))
        .pre_room_user_joined(|_, _| async { Ok(()) })
        .build()
        .spawn(https.clone());
    within(app.registered()).await.unwrap();

    let backend = RoomHooksClient::connect_tls(https, pki.client_tls(false))
        .await
        .unwrap();
    let response = within(backend.pre_room_user_join(join())).await.unwrap();
    assert_eq!(response.outcomes.len(), 1, "the TLS app answered");

    let plaintext = match RoomHooksClient::connect(h.endpoint.clone()).await {
        Ok(client) => client.pre_room_user_join(join()).await.is_err(),
        Err(_) => true,
    };
    assert!(
        plaintext,
        "a plaintext client must not get an answer from a TLS sidecar"
    );
}

#[tokio::test]
async fn mutual_tls_requires_a_client_certificate_from_the_configured_ca() {
    let pki = pki();
    let (_sidecar, https) = mutual_tls_sidecar(&pki).await;

    let anonymous = match RoomHooksClient::connect_tls(https.clone(), pki.client_tls(false)).await {
        Ok(client) => client.pre_room_user_join(join()).await.is_err(),
        Err(_) => true,
    };
    let identified = RoomHooksClient::connect_tls(https, pki.client_tls(true))
        .await
        .unwrap();

    assert!(anonymous, "a client without a certificate is refused");
    assert!(
        within(identified.pre_room_user_join(join()))
            .await
            .unwrap()
            .allowed
    );
}

#[tokio::test]
async fn apps_sharing_one_connection_reach_a_mutual_tls_sidecar_with_the_connections_tls() {
    let pki = pki();
    let (_sidecar, https) = mutual_tls_sidecar(&pki).await;
    let connection = Connection::new(https.clone())
        .unwrap()
        .tls(pki.client_tls(true))
        .unwrap();
    let allow = |id: &str| {
        App::builder(id)
            .pre_room_user_joined(|_, _| async { Ok(()) })
            .build()
    };
    let mut first = allow("secure-a").spawn_on(&connection);
    let mut second = allow("secure-b").spawn_on(&connection);
    within(first.registered()).await.unwrap();
    within(second.registered()).await.unwrap();

    let backend = RoomHooksClient::connect_tls(https, pki.client_tls(true))
        .await
        .unwrap();
    let response = within(backend.pre_room_user_join(join())).await.unwrap();

    assert_eq!(
        response.outcomes.len(),
        2,
        "both apps answered over mutual TLS"
    );
}
