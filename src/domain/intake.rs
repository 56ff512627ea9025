//! The customer's secure intake: a one-time, expiring link through which the customer hands over
//! the GitLab application and the access token, sealed on arrival.
//!
//! The link lives in the event log, not beside it: `intake_link_issued` records the digest of
//! its secret and its expiry; the customer's submission is one command whose events (the
//! application, its secret, the token, and `intake_redeemed`) are appended together under the
//! integration's expected version. So a link is used at most once even when two submissions
//! race, on any number of replicas, and the audit trail says who issued it and when it was used.

use std::collections::BTreeSet;

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::binding::CredentialBinding;
use super::command::IntakeSubmission;
use super::event::Event;
use super::rejection::{IntakeRefusal, Rejection};
use super::secret::TokenDigest;
use super::state::{IntakeLink, IntakeLinkStatus, Integration};

/// The longest an intake link may stay open.
/// The most intake links of one integration open at once.
pub const INTAKE_LINKS_OPEN_MAX: usize = 3;

pub const INTAKE_LINK_MAX_HOURS: u32 = 14 * 24;

/// Compares two digests in time independent of where they differ.
fn same_digest(a: &TokenDigest, b: &TokenDigest) -> bool {
    let (a, b) = (a.0.as_bytes(), b.0.as_bytes());
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

impl Integration {
    /// The link whose digest is `presented`, checked against `now`. Every link is compared, so
    /// the time taken says nothing about which one matched.
    pub fn intake_link(&self, presented: &TokenDigest, now: DateTime<Utc>) -> Result<&IntakeLink, IntakeRefusal> {
        let mut found = None;
        for link in &self.intake_links {
            if same_digest(&link.token_digest, presented) {
                found = Some(link);
            }
        }
        let link = found.ok_or(IntakeRefusal::Unknown)?;
        match link.status(now) {
            IntakeLinkStatus::Open => Ok(link),
            IntakeLinkStatus::Redeemed => Err(IntakeRefusal::AlreadyUsed),
            IntakeLinkStatus::Expired => Err(IntakeRefusal::Expired),
        }
    }

    pub(super) fn issue_intake_link(
        &self,
        link_id: Uuid,
        token_digest: &TokenDigest,
        expires_at: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<Vec<Event>, Rejection> {
        if expires_at <= now {
            return Err(Rejection::invalid("expires_in_hours", "must be in the future"));
        }
        if expires_at > now + chrono::Duration::hours(i64::from(INTAKE_LINK_MAX_HOURS)) {
            return Err(Rejection::invalid(
                "expires_in_hours",
                format!("must be at most {INTAKE_LINK_MAX_HOURS} hours: a link should not outlive the onboarding week"),
            ));
        }
        // Each open link is a bearer URL that takes the customer's secrets: a few at a time is
        // enough for a resend, and a hostile caller cannot scatter them.
        let open = self.intake_links.iter().filter(|l| l.status(now) == super::state::IntakeLinkStatus::Open).count();
        if open >= INTAKE_LINKS_OPEN_MAX {
            return Err(Rejection::invalid(
                "expires_in_hours",
                format!("{open} intake links are open already (at most {INTAKE_LINKS_OPEN_MAX}): wait until one is used or expires"),
            ));
        }
        if self.intake_links.iter().any(|l| l.link_id == link_id || same_digest(&l.token_digest, token_digest)) {
            return Err(Rejection::invalid("link_id", "a link with this id or secret was already issued"));
        }
        Ok(vec![Event::IntakeLinkIssued { link_id, token_digest: token_digest.clone(), expires_at }])
    }

    pub(super) fn redeem_intake(
        &self,
        submission: &IntakeSubmission,
        now: DateTime<Utc>,
    ) -> Result<Vec<Event>, Rejection> {
        let link = self.intake_link(&submission.presented, now).map_err(Rejection::Intake)?;
        if submission.application.scopes.is_empty() {
            return Err(Rejection::invalid("scopes", "select at least one scope"));
        }
        // The secrets are bound to the instance the customer was shown, and only if it is still
        // the instance of record.
        let bound_to = CredentialBinding::of(&self.facts.instance);
        if submission.shown_instance.as_ref().is_some_and(|shown| *shown != bound_to) {
            return Err(Rejection::Intake(IntakeRefusal::InstanceChanged));
        }
        Ok(vec![
            Event::ApplicationRegistered(submission.application.clone().into()),
            Event::ApplicationSecretProvided {
                secret: submission.application_secret.clone(),
                bound_to: Some(bound_to.clone()),
            },
            Event::AccessTokenProvided {
                token: submission.access_token.clone(),
                admin: submission.admin,
                bound_to: Some(bound_to),
            },
            Event::IntakeRedeemed { link_id: link.link_id },
        ])
    }

    /// Scopes the playbook requires that `scopes` lacks: shown to the customer before submitting.
    pub fn missing_required_scopes<'a>(
        &'a self,
        scopes: &BTreeSet<super::values::Scope>,
    ) -> Vec<&'a super::values::Scope> {
        self.playbook.required_scopes.iter().filter(|s| !scopes.contains(*s)).collect()
    }
}
