//! An edge's credentials: certificates issued from the server's CA (for a key made here
//! or the key of the edge's CSR) and tokens, and their rotation — new ones at once, the
//! old ones refused from a time the operator chooses, so the edge can switch with no
//! session dropped.

use cic_model::ApiError;
use cic_model::resource::{Edge, EdgeCredentials, EdgeCredentialsRequest};

use super::fetch;
use crate::AppState;
use crate::auth::{hash, new_token};
use crate::clock::{of_unix, unix_now};
use crate::error::ApiResult;

/// Days a certificate may be valid at most (the CA/Browser Forum's old ceiling).
const MAX_DAYS: u32 = 825;

fn kind(st: &AppState, req: &EdgeCredentialsRequest) -> ApiResult<&'static str> {
    match req.kind.as_deref() {
        Some("certificate") => Ok("certificate"),
        Some("token") => Ok("token"),
        None if st.config.edge_auth.issuer.is_some() => Ok("certificate"),
        None => Ok("token"),
        Some(other) => Err(ApiError::field(
            "kind",
            format!("{other:?} is not one of certificate, token"),
        )
        .into()),
    }
}

/// `:issueCertificate` (`rotate` false: nothing is revoked) and `:rotateCredentials`.
pub async fn issue(
    st: &AppState,
    edge_id: &str,
    req: EdgeCredentialsRequest,
    rotate: bool,
) -> ApiResult<EdgeCredentials> {
    let kind = if rotate {
        kind(st, &req)?
    } else {
        "certificate"
    };
    if kind == "token" && (req.csr.is_some() || req.validity_days.is_some()) {
        return Err(ApiError::field(
            if req.csr.is_some() {
                "csr"
            } else {
                "validityDays"
            },
            "applies to certificates only",
        )
        .into());
    }
    if !rotate && req.revoke_old_after_seconds.is_some() {
        return Err(ApiError::field(
            "revokeOldAfterSeconds",
            "applies to :rotateCredentials only",
        )
        .into());
    }
    let days = req.validity_days.unwrap_or(365);
    if !(1..=MAX_DAYS).contains(&days) {
        return Err(ApiError::field("validityDays", format!("must be 1 to {MAX_DAYS}")).into());
    }
    let after = req.revoke_old_after_seconds.unwrap_or(3600);
    if after > 90 * 86_400 {
        return Err(
            ApiError::field("revokeOldAfterSeconds", "must be at most 7776000 (90 days)").into(),
        );
    }
    let _w = st.lock_writes().await?;
    fetch::<Edge>(st, edge_id).await?;
    let revoke_at = unix_now() + after as i64;
    let mut out = EdgeCredentials {
        edge_id: edge_id.to_string(),
        kind: kind.to_string(),
        ..Default::default()
    };
    let mut tx = st.store.begin().await?;
    if kind == "certificate" {
        let Some(ca) = &st.config.edge_auth.issuer else {
            return Err(ApiError::precondition(
                "this server issues no certificates: start it with --client-ca and --client-ca-key",
            )
            .into());
        };
        let issued = ca
            .issue_edge(edge_id, req.csr.as_deref(), days as i64)
            .map_err(|e| match e {
                crate::pki::PkiError::Csr(m) => ApiError::field("csr", m),
                e => ApiError::new(cic_model::Code::Internal, e.to_string()),
            })?;
        let not_after = of_unix(issued.not_after.unix_timestamp());
        tx.put_edge_certificate(&issued.serial, edge_id, &not_after, &crate::now())
            .await?;
        if rotate {
            tx.revoke_edge_certificates(edge_id, revoke_at, &issued.serial)
                .await?;
        }
        out.certificate = Some(issued.cert_pem);
        out.private_key = issued.key_pem;
        out.ca_certificate = Some(ca.cert_pem.clone());
        out.serial_number = Some(issued.serial);
        out.not_after = Some(not_after);
    } else {
        let token = new_token("cic-edge-");
        tx.put_token(&hash(&token), "edge", edge_id).await?;
        tx.expire_edge_tokens(edge_id, revoke_at, &hash(&token))
            .await?;
        out.token = Some(token);
    }
    if rotate {
        out.old_revoked_at = Some(of_unix(revoke_at));
    }
    // No revision: an edge's credentials are not part of any edge's config.
    tx.commit().await?;
    Ok(out)
}
