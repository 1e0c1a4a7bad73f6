//! Time zone names as Graph writes them: IANA (`Europe/Berlin`), Windows
//! (`W. Europe Standard Time`) or `tzone://Microsoft/Utc`, resolved to a
//! [`chrono_tz::Tz`] — calbridge-core's CLDR mapping, shared with the EWS adapter.

pub use calbridge_core::zones::{resolve, windows_name};
