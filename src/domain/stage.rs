//! The guide's stages, in their contract order.

use std::fmt;

use serde::{Deserialize, Serialize};

/// Where an integration stands in the guide. `cancelled` is terminal and outside the order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Stage {
    Created,
    InfoGathered,
    NetworkEstablished,
    WebhookLive,
    Tested,
    Validated,
    Live,
    Cancelled,
}

impl Stage {
    /// The stages of the guide in order (without `cancelled`).
    pub const ORDERED: [Stage; 7] = [
        Stage::Created,
        Stage::InfoGathered,
        Stage::NetworkEstablished,
        Stage::WebhookLive,
        Stage::Tested,
        Stage::Validated,
        Stage::Live,
    ];

    /// The stages entered automatically when their requirements hold.
    pub const AUTOMATIC: [Stage; 5] =
        [Stage::InfoGathered, Stage::NetworkEstablished, Stage::WebhookLive, Stage::Tested, Stage::Validated];

    pub fn as_str(&self) -> &'static str {
        match self {
            Stage::Created => "created",
            Stage::InfoGathered => "info_gathered",
            Stage::NetworkEstablished => "network_established",
            Stage::WebhookLive => "webhook_live",
            Stage::Tested => "tested",
            Stage::Validated => "validated",
            Stage::Live => "live",
            Stage::Cancelled => "cancelled",
        }
    }

    pub fn parse(text: &str) -> Option<Stage> {
        Stage::ORDERED.into_iter().chain([Stage::Cancelled]).find(|stage| stage.as_str() == text)
    }

    /// The stage after this one in the guide, if any.
    pub fn next(&self) -> Option<Stage> {
        let index = Stage::ORDERED.iter().position(|s| s == self)?;
        Stage::ORDERED.get(index + 1).copied()
    }

    /// Index in the guide's order; `None` for `cancelled`.
    pub fn ordinal(&self) -> Option<usize> {
        Stage::ORDERED.iter().position(|s| s == self)
    }

    pub fn is_terminal(&self) -> bool {
        *self == Stage::Cancelled
    }
}

impl fmt::Display for Stage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
