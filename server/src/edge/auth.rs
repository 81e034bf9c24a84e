//! Bearer-token authentication: one token for backends (RoomHooks, Admin) and one per app
//! (AppRuntime.Connect). Tokens are compared in constant time.

use std::sync::Arc;

use subtle::ConstantTimeEq;
use tonic::{Request, Status, metadata::MetadataMap, service::Interceptor};

/// The token presented in `authorization: Bearer <token>`, if any.
pub fn bearer(metadata: &MetadataMap) -> Option<&str> {
    let value = metadata.get("authorization")?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

/// Whether `presented` equals `expected`, in time independent of where they differ.
pub fn token_matches(expected: &str, presented: &str) -> bool {
    expected.as_bytes().ct_eq(presented.as_bytes()).into()
}

/// Refuses backend calls without the backend token; lets everything through when none is set.
#[derive(Clone)]
pub struct BackendAuth {
    token: Option<Arc<str>>,
}

impl BackendAuth {
    /// An interceptor requiring `token`, or none.
    pub fn new(token: Option<&str>) -> Self {
        Self {
            token: token.map(Arc::from),
        }
    }
}

impl Interceptor for BackendAuth {
    fn call(&mut self, request: Request<()>) -> Result<Request<()>, Status> {
        let Some(expected) = &self.token else {
            return Ok(request);
        };
        match bearer(request.metadata()) {
            None => Err(Status::unauthenticated(
                "this sidecar requires a backend token: send `authorization: Bearer <token>`",
            )),
            Some(presented) if token_matches(expected, presented) => Ok(request),
            Some(_) => Err(Status::unauthenticated("the backend token is not valid")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_tokens_are_read_case_insensitively_and_compared_exactly() {
        let mut md = MetadataMap::new();
        md.insert("authorization", "bearer abc".parse().unwrap());
        assert_eq!(bearer(&md), Some("abc"));
        assert!(token_matches("abc", "abc"));
        assert!(!token_matches("abc", "abd"));
        assert!(!token_matches("abc", "abcd"));
    }

    #[test]
    fn the_backend_interceptor_refuses_missing_and_wrong_tokens() {
        let mut auth = BackendAuth::new(Some("secret"));
        let status = auth.call(Request::new(())).unwrap_err();
        assert_eq!(status.code(), tonic::Code::Unauthenticated);
        let mut request = Request::new(());
        request
            .metadata_mut()
            .insert("authorization", "Bearer secret".parse().unwrap());
        assert!(auth.call(request).is_ok());
        assert!(BackendAuth::new(None).call(Request::new(())).is_ok());
    }
}
