//! Gmail's bulk-sender standing of each verified domain, shown with the domain
//! (`GET /v1/domains`, the Domains page): what the tenant sent to personal Gmail addresses
//! over the last day from the domain's primary domain, and whether that calls for DMARC now.

use chrono::{Duration, Utc};
use serde::Serialize;
use utoipa::ToSchema;

use super::AppState;
use super::domains::DomainView;
use super::error::ApiError;
use crate::domain::bulk::{self, BulkLevel, GMAIL_BULK_THRESHOLD, GmailVolume};
use crate::domain::channel_dns::organisational_domain;
use crate::domain::{ClaimState, Domain, TenantId};
use crate::store::{domains, gmail_volume};

#[derive(Debug, Serialize, ToSchema)]
pub struct GmailBulkView {
    /// The primary domain Google counts: the highest verified domain of the tenant this one
    /// belongs to (itself, or a parent).
    #[schema(example = "acme.example")]
    pub(in crate::http) primary_domain: String,
    /// `under`, `approaching` (half-way in a day, or the last six hours' pace would cross)
    /// or `over` (a bulk sender for good).
    #[schema(value_type = String, example = "approaching")]
    pub(in crate::http) level: BulkLevel,
    /// Messages to personal Gmail addresses over the last 24 hours from the primary domain
    /// and its subdomains, every channel included (reps' own mailboxes too).
    pub(in crate::http) last_24h: u64,
    /// The last six hours' count times four.
    pub(in crate::http) projected_24h: u64,
    #[schema(example = 5000)]
    pub(in crate::http) threshold: u64,
    /// What it means and what to do.
    pub(in crate::http) message: String,
}

fn volume_of(primary: &Domain, rows: &[(String, i64)]) -> u64 {
    rows.iter()
        .filter(|(from, _)| {
            from.rsplit_once('@')
                .is_some_and(|(_, d)| bulk::counts_toward(d, primary))
        })
        .map(|(_, n)| u64::try_from(*n).unwrap_or(0))
        .sum()
}

/// Sets `gmail_bulk` on the verified domains of `views` (two indexed sums for the tenant,
/// and its claims' states).
pub(in crate::http) async fn fill(
    state: &AppState,
    tenant: TenantId,
    views: &mut [DomainView],
) -> Result<(), ApiError> {
    if !views.iter().any(|v| v.state == "verified") {
        return Ok(());
    }
    let now = Utc::now();
    let day = (now - Duration::hours(24)).timestamp_micros();
    let quarter = (now - Duration::hours(6)).timestamp_micros();
    let (last_day, last_quarter, claims) = state
        .store
        .run(move |conn| {
            Ok((
                gmail_volume::sent_since(conn, tenant, day)?,
                gmail_volume::sent_since(conn, tenant, quarter)?,
                domains::states(conn, tenant)?,
            ))
        })
        .await?;
    // Every verified domain of the tenant, not only those shown: a subdomain shown alone is
    // still counted with its parent.
    let verified: Vec<Domain> = claims
        .into_iter()
        .filter(|(_, state)| *state == ClaimState::Verified)
        .map(|(domain, _)| domain)
        .collect();
    for view in views.iter_mut().filter(|v| v.state == "verified") {
        // Google's primary domain is the organisational domain, as the alignment checks
        // work it out.
        let Ok(primary) = Domain::parse(&organisational_domain(&view.domain, &verified)) else {
            continue;
        };
        let volume = GmailVolume {
            last_24h: volume_of(&primary, &last_day),
            last_6h: volume_of(&primary, &last_quarter),
        };
        // The DMARC check already falls back to the organisational domain's record.
        let has_dmarc = view
            .health
            .as_ref()
            .and_then(|h| h.checks.iter().find(|c| c.check == "dmarc"))
            .and_then(|c| match c.status {
                "ok" => Some(true),
                "missing" | "invalid" => Some(false),
                _ => None,
            });
        let standing = bulk::assess(&primary, volume, has_dmarc);
        view.gmail_bulk = Some(GmailBulkView {
            primary_domain: primary.to_string(),
            level: standing.level,
            last_24h: volume.last_24h,
            projected_24h: standing.projected_24h,
            threshold: GMAIL_BULK_THRESHOLD,
            message: standing.message,
        });
    }
    Ok(())
}

/// One claim as the API shows it, with its Gmail count when verified.
pub(in crate::http) async fn view_of(
    state: &AppState,
    claim: crate::store::domains::DomainClaim,
) -> Result<DomainView, ApiError> {
    let tenant = claim.tenant;
    let mut views = [DomainView::from(claim)];
    fill(state, tenant, &mut views).await?;
    let [view] = views;
    Ok(view)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_subdomain_is_counted_with_its_highest_verified_parent() {
        let verified: Vec<Domain> = ["acme.com", "mail.acme.com", "other.test"]
            .iter()
            .map(|d| Domain::parse(d).unwrap())
            .collect();
        let primary = |d: &str| organisational_domain(d, &verified);
        assert_eq!(primary("mail.acme.com"), "acme.com");
        assert_eq!(primary("acme.com"), "acme.com");
        assert_eq!(primary("other.test"), "other.test");
        assert_eq!(primary("x.notacme.com"), "x.notacme.com");
    }

    #[test]
    fn the_volume_sums_the_primary_domain_and_its_subdomains() {
        let rows = vec![
            ("rep@acme.com".to_owned(), 10),
            ("news@mail.acme.com".to_owned(), 5),
            ("x@notacme.com".to_owned(), 100),
        ];
        assert_eq!(volume_of(&Domain::parse("acme.com").unwrap(), &rows), 15);
    }
}
