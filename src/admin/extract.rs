//! Extractors whose rejections are JSON `{"error": ...}` like every other
//! API error, instead of axum's plain-text defaults.

use super::error;
use axum::extract::{FromRequestParts, Path, Query};
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::response::Response;
use std::collections::BTreeMap;

/// The `{id}` path segment.
pub struct Id(pub String);

impl<S: Send + Sync> FromRequestParts<S> for Id {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match Path::<String>::from_request_parts(parts, state).await {
            Ok(Path(id)) => Ok(Id(id)),
            Err(e) => Err(error(StatusCode::BAD_REQUEST, &format!("bad message id: {}", e.body_text()))),
        }
    }
}

/// The query string as key/value pairs.
pub struct Params(pub BTreeMap<String, String>);

impl<S: Send + Sync> FromRequestParts<S> for Params {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match Query::<BTreeMap<String, String>>::from_request_parts(parts, state).await {
            Ok(Query(p)) => Ok(Params(p)),
            Err(e) => Err(error(StatusCode::BAD_REQUEST, &format!("bad query string: {}", e.body_text()))),
        }
    }
}
