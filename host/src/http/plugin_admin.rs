//! The plugin API (`--plugin-admin`), for deploying without a shell on the
//! node (`wasq plugin deploy`):
//!
//! - `PUT /plugins/NAME`: a multipart form with a `module` part (`.wasm`
//!   or `.wat`) and a `manifest` part (the TOML). The version is loaded
//!   before the answer: 200 with `result` `loaded`, `reloaded` or
//!   `unchanged`; 422 `PLUGIN_REJECTED: why` if it does not load (the old
//!   version stays live and its files are put back).
//! - `DELETE /plugins/NAME`: removes the files and stops the plugin (its
//!   state and channel stay).
//! - `GET /plugins/NAME/module` and `/manifest`: the live version's files
//!   as they were loaded, to roll back to.
//!
//! Every route asks [`AdminAccess`](super::admin_access::AdminAccess) who
//! the caller is ([`Admin`]); every change is logged with that name and
//! kept in the plugin's reload history (`by`).

use axum::body::Body;
use axum::extract::{ConnectInfo, FromRequest, FromRequestParts, Multipart, Path, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use super::https::Peer;
use super::{ApiError, ApiResponse, ApiResult, AppState};
use crate::plugins::install::{Upload, module_extension};
use crate::plugins::manifest::Manifest;
use crate::plugins::{SyncResult, is_plugin_name};

/// Room in a request beside the module: the manifest and the form's framing.
pub const FORM_OVERHEAD: usize = 1 << 20;

/// A caller the plugin API lets in, and the plugin
/// named in the path: what every route starts from.
pub struct Admin {
    by: String,
    name: String,
}

impl FromRequestParts<AppState> for Admin {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Admin, ApiError> {
        let Some(access) = &state.plugin_admin else {
            return Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "PLUGIN_ADMIN_DISABLED",
            ));
        };
        let ConnectInfo(peer) = ConnectInfo::<Peer>::from_request_parts(parts, state)
            .await
            .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
        let by = access.caller(&peer, &parts.headers)?;
        let Path(name) = Path::<String>::from_request_parts(parts, state)
            .await
            .map_err(|_| ApiError::bad_request("INVALID_PLUGIN_NAME"))?;
        if !is_plugin_name(&name) {
            return Err(ApiError::bad_request("INVALID_PLUGIN_NAME"));
        }
        Ok(Admin { by, name })
    }
}

pub async fn put(
    State(state): State<AppState>,
    admin: Result<Admin, ApiError>,
    request: Request,
) -> ApiResult {
    let limit = state.plugin_admin_max_module;
    let Admin { by, name } = match admin {
        Ok(admin) => admin,
        Err(refusal) => {
            // Read what the client sends before answering: a client that
            // is still writing when the connection closes sees a broken
            // pipe, not the refusal.
            let _ = axum::body::to_bytes(request.into_body(), limit + FORM_OVERHEAD).await;
            return Err(refusal);
        }
    };
    let form = Multipart::from_request(request, &state)
        .await
        .map_err(|e| ApiError::bad_request(format!("INVALID_FORM: {e}")))?;
    let upload = read_form(form, limit).await?;
    let manifest_file = state.plugins.dir().join(format!("{name}.toml"));
    if let Err(why) = Manifest::parse(&name, &manifest_file, &upload.manifest) {
        tracing::warn!(plugin = %name, by, "PLUGIN API: PUT refused, the manifest does not parse: {why}");
        return Err(ApiError::bad_request(format!("INVALID_MANIFEST: {why}")));
    }
    let format = module_extension(&upload.module);
    tracing::info!(plugin = %name, by, bytes = upload.module.len(), format, "PLUGIN API: PUT");
    let result = state.plugins.install(&name, upload, &by).await;
    answer(&state, &name, &by, "PUT", result)
}

pub async fn delete(State(state): State<AppState>, Admin { by, name }: Admin) -> ApiResult {
    tracing::info!(plugin = %name, by, "PLUGIN API: DELETE");
    let result = state.plugins.uninstall(&name, &by).await;
    answer(&state, &name, &by, "DELETE", result)
}

/// The live module, `application/wasm` (or the text format as text), with
/// its hash in `X-Wasq-Module-Hash`.
pub async fn module(State(state): State<AppState>, admin: Admin) -> Result<Response, ApiError> {
    let live = live(&state, &admin.name)?;
    let module = live.files.module;
    let content_type = match module_extension(&module) {
        "wasm" => "application/wasm",
        _ => "text/plain; charset=utf-8",
    };
    Ok(file_response(
        // Shared with the live version, not copied.
        Body::from(bytes::Bytes::from_owner(module)),
        content_type,
        &live.module_hash,
    ))
}

/// The live version's manifest, as it was loaded.
pub async fn manifest(State(state): State<AppState>, admin: Admin) -> Result<Response, ApiError> {
    let live = live(&state, &admin.name)?;
    Ok(file_response(
        Body::from(live.files.manifest.to_string()),
        "application/toml",
        &live.module_hash,
    ))
}

fn live(state: &AppState, name: &str) -> Result<crate::plugins::install::LiveFiles, ApiError> {
    state
        .plugins
        .live_files(name)
        .ok_or_else(|| ApiError::not_found("PLUGIN_NOT_RUNNING"))
}

fn file_response(body: Body, content_type: &'static str, hash: &str) -> Response {
    let mut response = body.into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    if let Ok(hash) = HeaderValue::from_str(hash) {
        headers.insert("X-Wasq-Module-Hash", hash);
    }
    response
}

/// The form's `module` and `manifest` parts; 413 for a module over the
/// limit, 400 for anything else amiss.
async fn read_form(mut form: Multipart, max_module: usize) -> Result<Upload, ApiError> {
    let invalid = |e: axum::extract::multipart::MultipartError| {
        if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
            too_big(max_module)
        } else {
            ApiError::bad_request(format!("INVALID_FORM: {e}"))
        }
    };
    let (mut module, mut manifest, mut over) = (None, None, false);
    while let Some(mut part) = form.next_field().await.map_err(invalid)? {
        match part.name() {
            Some("module") => {
                let mut bytes = Vec::new();
                while let Some(chunk) = part.chunk().await.map_err(invalid)? {
                    // Past the limit the rest is read and dropped, so the
                    // client is still listening when the refusal comes.
                    over |= bytes.len() + chunk.len() > max_module;
                    if !over {
                        bytes.extend_from_slice(&chunk);
                    }
                }
                module = Some(bytes);
            }
            Some("manifest") => {
                let text = part.text().await.map_err(invalid)?;
                manifest = Some(text);
            }
            other => {
                return Err(ApiError::bad_request(format!(
                    "INVALID_FORM: unknown part {:?} (expected module and manifest)",
                    other.unwrap_or("")
                )));
            }
        }
    }
    if over {
        return Err(too_big(max_module));
    }
    match (module, manifest) {
        (Some(module), Some(manifest)) if !module.is_empty() => Ok(Upload { module, manifest }),
        _ => Err(ApiError::bad_request(
            "INVALID_FORM: needs a non-empty module part and a manifest part",
        )),
    }
}

fn too_big(max_module: usize) -> ApiError {
    ApiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        format!("MODULE_TOO_BIG: over --plugin-admin-max-module-size ({max_module} bytes)"),
    )
}

/// The answer to a change, logged with who made it.
fn answer(state: &AppState, name: &str, by: &str, verb: &str, result: SyncResult) -> ApiResult {
    let outcome = match result {
        SyncResult::Loaded => "loaded",
        SyncResult::Reloaded => "reloaded",
        SyncResult::Unchanged => "unchanged",
        SyncResult::Removed => "removed",
        SyncResult::Unknown => return Err(ApiError::not_found("PLUGIN_NOT_FOUND")),
        SyncResult::Failed(why) => {
            return Err(ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                format!("PLUGIN_REJECTED: {why}"),
            ));
        }
    };
    tracing::info!(plugin = name, by, "PLUGIN API: {verb} done: {outcome}");
    Ok(ApiResponse::Json(json!({
        "result": outcome,
        "plugin": state.plugins.status_of(name),
    })))
}
