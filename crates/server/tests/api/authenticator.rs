//! A software authenticator for the API tests: answers WebAuthn options as a browser with a
//! platform passkey would (P-256 keys from `ring`, "none" attestation, user verification
//! done, discoverable credentials). It speaks the JSON the server sends and takes, so the
//! server's verification runs exactly as for a real browser. (The browser tests use
//! Chromium's own virtual authenticator.)

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use ring::{
    digest::{SHA256, digest},
    rand::SystemRandom,
    signature::{ECDSA_P256_SHA256_ASN1_SIGNING, EcdsaKeyPair, KeyPair},
};
use serde_json::{Value, json};

/// Flags in authenticator data: user present, user verified, attested credential data.
const UP: u8 = 0x01;
const UV: u8 = 0x04;
const AT: u8 = 0x40;

pub struct Credential {
    pub id: Vec<u8>,
    key: EcdsaKeyPair,
    pub user_handle: Vec<u8>,
    pub counter: u32,
}

pub struct SoftAuthenticator {
    origin: String,
    rp_id: String,
    rng: SystemRandom,
    pub credentials: Vec<Credential>,
}

fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

fn unb64(text: &Value) -> Vec<u8> {
    URL_SAFE_NO_PAD
        .decode(text.as_str().expect("base64url string"))
        .expect("base64url")
}

/// Just enough CBOR (RFC 8949) for an attestation object and a COSE key.
mod cbor {
    fn head(out: &mut Vec<u8>, major: u8, value: u64) {
        let major = major << 5;
        match value {
            0..=23 => out.push(major | value as u8),
            24..=0xff => out.extend([major | 24, value as u8]),
            0x100..=0xffff => {
                out.push(major | 25);
                out.extend((value as u16).to_be_bytes());
            }
            _ => {
                out.push(major | 26);
                out.extend((value as u32).to_be_bytes());
            }
        }
    }
    pub fn int(out: &mut Vec<u8>, value: i64) {
        if value >= 0 {
            head(out, 0, value as u64);
        } else {
            head(out, 1, (-1 - value) as u64);
        }
    }
    pub fn bytes(out: &mut Vec<u8>, value: &[u8]) {
        head(out, 2, value.len() as u64);
        out.extend(value);
    }
    pub fn text(out: &mut Vec<u8>, value: &str) {
        head(out, 3, value.len() as u64);
        out.extend(value.as_bytes());
    }
    pub fn map(out: &mut Vec<u8>, entries: usize) {
        head(out, 5, entries as u64);
    }
}

impl SoftAuthenticator {
    /// An authenticator in a browser at `origin` (e.g. `http://localhost:8080`).
    pub fn new(origin: &str) -> Self {
        let rp_id = url::Url::parse(origin)
            .unwrap()
            .host_str()
            .unwrap()
            .to_owned();
        Self {
            origin: origin.trim_end_matches('/').to_owned(),
            rp_id,
            rng: SystemRandom::new(),
            credentials: Vec::new(),
        }
    }

    fn client_data(&self, kind: &str, challenge: &Value) -> Vec<u8> {
        json!({
            "type": kind,
            "challenge": challenge,
            "origin": self.origin,
            "crossOrigin": false,
        })
        .to_string()
        .into_bytes()
    }

    fn rp_id_hash(&self) -> Vec<u8> {
        digest(&SHA256, self.rp_id.as_bytes()).as_ref().to_vec()
    }

    /// Answers `navigator.credentials.create` with a new discoverable credential. `options`
    /// is the server's `CreationChallengeResponse` (`{"publicKey": …}`).
    pub fn register(&mut self, options: &Value) -> Value {
        let public_key = &options["publicKey"];
        assert_eq!(public_key["rp"]["id"], self.rp_id.as_str());
        let pkcs8 =
            EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, &self.rng).unwrap();
        let key =
            EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, pkcs8.as_ref(), &self.rng)
                .unwrap();
        let mut id = vec![0u8; 32];
        ring::rand::SecureRandom::fill(&self.rng, &mut id).unwrap();
        let credential = Credential {
            id,
            key,
            user_handle: unb64(&public_key["user"]["id"]),
            counter: 0,
        };
        let answer = self.attest(&credential, &public_key["challenge"]);
        self.credentials.push(credential);
        answer
    }

    /// Answers creation options again with an existing credential (as a confused or hostile
    /// client could).
    pub fn register_again(&self, index: usize, options: &Value) -> Value {
        self.attest(&self.credentials[index], &options["publicKey"]["challenge"])
    }

    fn attest(&self, credential: &Credential, challenge: &Value) -> Value {
        let point = credential.key.public_key().as_ref(); // 0x04 || x || y
        let mut cose = Vec::new();
        cbor::map(&mut cose, 5);
        cbor::int(&mut cose, 1); // kty: EC2
        cbor::int(&mut cose, 2);
        cbor::int(&mut cose, 3); // alg: ES256
        cbor::int(&mut cose, -7);
        cbor::int(&mut cose, -1); // crv: P-256
        cbor::int(&mut cose, 1);
        cbor::int(&mut cose, -2);
        cbor::bytes(&mut cose, &point[1..33]);
        cbor::int(&mut cose, -3);
        cbor::bytes(&mut cose, &point[33..65]);

        let mut auth_data = self.rp_id_hash();
        auth_data.push(UP | UV | AT);
        auth_data.extend(credential.counter.to_be_bytes());
        auth_data.extend([0u8; 16]); // AAGUID
        auth_data.extend(u16::try_from(credential.id.len()).unwrap().to_be_bytes());
        auth_data.extend(&credential.id);
        auth_data.extend(cose);

        let mut attestation = Vec::new();
        cbor::map(&mut attestation, 3);
        cbor::text(&mut attestation, "fmt");
        cbor::text(&mut attestation, "none");
        cbor::text(&mut attestation, "attStmt");
        cbor::map(&mut attestation, 0);
        cbor::text(&mut attestation, "authData");
        cbor::bytes(&mut attestation, &auth_data);

        json!({
            "id": b64(&credential.id),
            "rawId": b64(&credential.id),
            "type": "public-key",
            "response": {
                "attestationObject": b64(&attestation),
                "clientDataJSON": b64(&self.client_data("webauthn.create", challenge)),
            },
            "extensions": {},
        })
    }

    /// Answers `navigator.credentials.get`: with the first of this authenticator's
    /// credentials the options allow (any, for a discoverable sign-in).
    pub fn assert(&mut self, options: &Value) -> Value {
        let public_key = &options["publicKey"];
        let allowed: Vec<Vec<u8>> = public_key["allowCredentials"]
            .as_array()
            .map(|list| list.iter().map(|c| unb64(&c["id"])).collect())
            .unwrap_or_default();
        let index = self
            .credentials
            .iter()
            .position(|c| allowed.is_empty() || allowed.contains(&c.id))
            .expect("no credential of this authenticator is allowed");
        self.assert_with(index, &public_key["challenge"])
    }

    /// Signs `challenge` with credential `index`.
    pub fn assert_with(&mut self, index: usize, challenge: &Value) -> Value {
        let client_data = self.client_data("webauthn.get", challenge);
        let rp_id_hash = self.rp_id_hash();
        let credential = &mut self.credentials[index];
        credential.counter += 1;
        let mut auth_data = rp_id_hash;
        auth_data.push(UP | UV);
        auth_data.extend(credential.counter.to_be_bytes());
        let mut signed = auth_data.clone();
        signed.extend(digest(&SHA256, &client_data).as_ref());
        let signature = credential.key.sign(&self.rng, &signed).unwrap();
        json!({
            "id": b64(&credential.id),
            "rawId": b64(&credential.id),
            "type": "public-key",
            "response": {
                "authenticatorData": b64(&auth_data),
                "clientDataJSON": b64(&client_data),
                "signature": b64(signature.as_ref()),
                "userHandle": b64(&credential.user_handle),
            },
            "extensions": {},
        })
    }
}
