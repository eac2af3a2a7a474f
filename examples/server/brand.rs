//! Whose verification it is, as the person verifying sees it: the account's display name and
//! its "Get help" link ([`AccountProfile`]). A link's `name` is the owner's internal label
//! ("Spring onboarding, cohort B") and never appears on a page a visitor sees; without a display
//! name the pages say "Identity verification".

use magic_link::store::LinkStore;
use magic_link::{AccountId, AccountProfile};
use minijinja::context;
use minijinja::value::Value;

use crate::errors::log_error;
use crate::i18n::Texts;
use crate::AppState;

/// The account's public identity, for the visitor's pages.
#[derive(Debug, Clone, Default)]
pub(crate) struct Brand {
    /// The account's display name, if it has one.
    name: Option<String>,
    /// Its support URL, if it has one.
    help: Option<String>,
}

impl Brand {
    /// No account known (a forged or malformed token): the neutral "Identity verification".
    pub(crate) fn neutral() -> Self {
        Self::default()
    }

    /// From the parts of a profile, as [`Inspection`](magic_link::Inspection) reports them.
    pub(crate) fn new(name: Option<String>, help: Option<&magic_link::returns::ReturnUrl>) -> Self {
        Self {
            name,
            help: help.map(|url| url.as_str().to_owned()),
        }
    }

    pub(crate) fn of_profile(profile: &AccountProfile) -> Self {
        Self::new(profile.display_name.clone(), profile.support_url.as_ref())
    }

    /// The brand of `account`, read from the store; neutral (and logged) if the read fails:
    /// the page still shows.
    pub(crate) async fn of_account<S: LinkStore>(app: &AppState<S>, account: AccountId) -> Self {
        match app.links.account(account).await {
            Ok(account) => Self::of_profile(&account.profile),
            Err(err) => {
                log_error("store", &err);
                Self::neutral()
            }
        }
    }

    /// What the templates print: `brand` (the display name, or "Identity verification" in the
    /// page's language), `help_url` (none: no "Get help" link) and `help_text`.
    pub(crate) fn context(&self, t: &Texts) -> Value {
        context! {
            brand => self.name.as_deref().unwrap_or(t.title),
            branded => self.name.is_some(),
            help_url => self.help.as_deref(),
            help_text => t.get_help,
        }
    }
}
