//! The plan catalogue (docs/behaviour.md#plans-limits-and-quotas) and a team's effective settings.

pub use common::access::{ApiKeyPolicy, Plan};

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Limits {
    pub api_access: bool,
    pub requests_per_minute: u32,
    pub requests_per_month: u64,
    pub mcp_calls_per_day: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Overrides {
    pub requests_per_minute: Option<u32>,
    pub requests_per_month: Option<u64>,
    pub mcp_calls_per_day: Option<u32>,
}

/// Limits of each plan. The default is the table of docs/behaviour.md#plans-limits-and-quotas.
#[derive(Debug, Clone)]
pub struct Catalogue {
    pub free: Limits,
    pub pro: Limits,
    pub scale: Limits,
    pub enterprise: Limits,
}

impl Default for Catalogue {
    fn default() -> Self {
        let paid = |rpm, month, mcp| Limits {
            api_access: true,
            requests_per_minute: rpm,
            requests_per_month: month,
            mcp_calls_per_day: mcp,
        };
        Catalogue {
            free: Limits { api_access: false, requests_per_minute: 0, requests_per_month: 0, mcp_calls_per_day: 50 },
            pro: paid(30, 10_000, 500),
            scale: paid(60, 100_000, 2_000),
            enterprise: paid(120, 1_000_000, 10_000),
        }
    }
}

impl Catalogue {
    /// A catalogue from JSON such as `{"pro": {"api_access": true, "requests_per_minute": 40,
    /// "requests_per_month": 20000, "mcp_calls_per_day": 800}}`; plans left out keep the built-in
    /// values.
    pub fn from_json(text: &str) -> Result<Catalogue, String> {
        #[derive(serde::Deserialize)]
        #[serde(deny_unknown_fields)]
        struct File {
            free: Option<Limits>,
            pro: Option<Limits>,
            scale: Option<Limits>,
            enterprise: Option<Limits>,
        }
        let file: File = serde_json::from_str(text).map_err(|e| format!("plan catalogue: {e}"))?;
        let defaults = Catalogue::default();
        Ok(Catalogue {
            free: file.free.unwrap_or(defaults.free),
            pro: file.pro.unwrap_or(defaults.pro),
            scale: file.scale.unwrap_or(defaults.scale),
            enterprise: file.enterprise.unwrap_or(defaults.enterprise),
        })
    }

    pub fn limits(&self, plan: Plan, overrides: &Overrides) -> Limits {
        let base = match plan {
            Plan::Free => self.free,
            Plan::Pro => self.pro,
            Plan::Scale => self.scale,
            Plan::Enterprise => self.enterprise,
        };
        Limits {
            api_access: base.api_access,
            requests_per_minute: overrides.requests_per_minute.unwrap_or(base.requests_per_minute),
            requests_per_month: overrides.requests_per_month.unwrap_or(base.requests_per_month),
            mcp_calls_per_day: overrides.mcp_calls_per_day.unwrap_or(base.mcp_calls_per_day),
        }
    }
}

/// A team's stored settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TeamSettings {
    pub team_id: String,
    pub plan: Plan,
    pub api_key_policy: ApiKeyPolicy,
    pub overrides: Overrides,
}

impl TeamSettings {
    pub fn defaults(team_id: &str) -> Self {
        TeamSettings {
            team_id: team_id.to_owned(),
            plan: Plan::Free,
            api_key_policy: ApiKeyPolicy::default(),
            overrides: Overrides::default(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_catalogue_file_overrides_only_the_plans_it_names() {
        let text = r#"{"pro": {"api_access": true, "requests_per_minute": 40, "requests_per_month": 20000, "mcp_calls_per_day": 800}}"#;
        let catalogue = Catalogue::from_json(text).unwrap();
        assert_eq!(catalogue.limits(Plan::Pro, &Overrides::default()).requests_per_minute, 40);
        assert_eq!(catalogue.limits(Plan::Scale, &Overrides::default()), Catalogue::default().scale);
        for bad in [r#"{"gold": {}}"#, r#"{"pro": {"requests_per_minute": 1}}"#, "[]"] {
            assert!(Catalogue::from_json(bad).is_err(), "{bad} accepted");
        }
    }

    #[test]
    fn overrides_replace_single_limits() {
        let overrides = Overrides { requests_per_minute: Some(7), ..Overrides::default() };
        let limits = Catalogue::default().limits(Plan::Scale, &overrides);
        assert_eq!((limits.requests_per_minute, limits.requests_per_month), (7, 100_000));
    }
}
