//! NSQ's "V1" HTTP responses: 200 with a text or JSON body, or an error
//! status with `{"message":"CODE"}`, always with the
//! `X-NSQ-Content-Type: nsq; version=1.0` header clients look for.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

/// A successful answer.
pub enum ApiResponse {
    Empty,
    Text(String),
    Json(serde_json::Value),
    JsonBytes(Vec<u8>),
}

impl IntoResponse for ApiResponse {
    fn into_response(self) -> Response {
        let mut response = match self {
            ApiResponse::Empty => Response::new(axum::body::Body::empty()),
            ApiResponse::Text(text) => text.into_response(),
            ApiResponse::Json(value) => {
                json_response(StatusCode::OK, value.to_string().into_bytes())
            }
            ApiResponse::JsonBytes(bytes) => json_response(StatusCode::OK, bytes),
        };
        nsq_header(&mut response);
        response
    }
}

/// An error answer: a status and nsqd's message code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub status: StatusCode,
    pub message: String,
}

impl ApiError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            message: message.into(),
        }
    }

    pub fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, message)
    }

    pub fn not_found(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, message)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = serde_json::json!({ "message": self.message })
            .to_string()
            .into_bytes();
        let mut response = json_response(self.status, body);
        nsq_header(&mut response);
        response
    }
}

pub type ApiResult = Result<ApiResponse, ApiError>;

fn json_response(status: StatusCode, body: Vec<u8>) -> Response {
    let mut response = Response::new(axum::body::Body::from(body));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json; charset=utf-8"),
    );
    response
}

fn nsq_header(response: &mut Response) {
    response.headers_mut().insert(
        "X-NSQ-Content-Type",
        HeaderValue::from_static("nsq; version=1.0"),
    );
}

/// A request's query string, read as Go's `url.ParseQuery` (first value wins).
#[derive(Debug, Default)]
pub struct Query(Vec<(String, String)>);

impl Query {
    pub fn parse(raw: Option<&str>) -> Query {
        Query(
            form_urlencoded::parse(raw.unwrap_or("").as_bytes())
                .into_owned()
                .collect(),
        )
    }

    pub fn get(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

/// nsqd's boolean query values; anything else is "not given".
pub fn parse_bool_param(value: Option<&str>) -> Option<bool> {
    match value? {
        "true" | "1" => Some(true),
        "false" | "0" => Some(false),
        _ => None,
    }
}
