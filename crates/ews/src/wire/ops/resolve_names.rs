//! ResolveNames — <https://learn.microsoft.com/exchange/client-developer/web-service-reference/resolvenames>
//!
//! Resolves an ambiguous name or an address against the directory (and contacts): calbridge
//! uses it to tell whether an attendee is inside the directory and to verify a link.

use super::super::envelope::expect_operation;
use super::super::types::EmailAddress;
use super::super::xml::{parse_bool, parse_num, Node, NodeExt, WireError, XmlWriter, NS_TYPES};
use super::{parse_messages, write_messages, Message};

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Request {
    pub return_full_contact_data: bool,
    /// `ActiveDirectory`, `ActiveDirectoryContacts`, `Contacts`, `ContactsActiveDirectory`.
    pub search_scope: Option<String>,
    pub unresolved_entry: String,
}

impl Request {
    pub fn write(&self, w: &mut XmlWriter) {
        let mut a = vec![("ReturnFullContactData", if self.return_full_contact_data { "true" } else { "false" })];
        if let Some(s) = &self.search_scope {
            a.push(("SearchScope", s.as_str()));
        }
        w.open("m:ResolveNames", &a).leaf("m:UnresolvedEntry", &self.unresolved_entry).close("m:ResolveNames");
    }

    pub fn parse(body: Node<'_, '_>) -> Result<Self, WireError> {
        expect_operation(body, "ResolveNames")?;
        Ok(Request {
            return_full_contact_data: parse_bool(
                "ReturnFullContactData",
                body.attribute("ReturnFullContactData").unwrap_or("false"),
            )?,
            search_scope: body.attribute("SearchScope").map(str::to_string),
            unresolved_entry: body
                .m_text("UnresolvedEntry")
                .map(|s| s.trim().to_string())
                .ok_or_else(|| WireError::missing("ResolveNames/UnresolvedEntry"))?,
        })
    }
}

/// One resolution: the mailbox and, with full contact data, the contact's display name.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Resolution {
    pub mailbox: EmailAddress,
    pub contact_display_name: Option<String>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ResolutionSet {
    pub total_items_in_view: u32,
    pub includes_last_item_in_range: bool,
    pub resolutions: Vec<Resolution>,
}

/// `ErrorNameResolutionNoResults` when nothing matched; `ErrorNameResolutionMultipleResults`
/// (a warning, with the set) when several did.
pub type Response = Vec<Message<ResolutionSet>>;

pub fn write_response(w: &mut XmlWriter, r: &Response) {
    write_messages(w, "ResolveNames", r, &[], |w, set| {
        let (total, last) = (set.total_items_in_view.to_string(), set.includes_last_item_in_range.to_string());
        w.open("m:ResolutionSet", &[("TotalItemsInView", &total), ("IncludesLastItemInRange", &last)]);
        for res in &set.resolutions {
            w.open("t:Resolution", &[]);
            res.mailbox.write(w, "t:Mailbox");
            if let Some(n) = &res.contact_display_name {
                w.open("t:Contact", &[]).leaf("t:DisplayName", n).close("t:Contact");
            }
            w.close("t:Resolution");
        }
        w.close("m:ResolutionSet");
    });
}

pub fn parse_response(body: Node<'_, '_>) -> Result<Response, WireError> {
    parse_messages(body, "ResolveNames", |m| {
        let Some(set) = m.m("ResolutionSet") else { return Ok(ResolutionSet::default()) };
        Ok(ResolutionSet {
            total_items_in_view: set
                .attribute("TotalItemsInView")
                .map(|v| parse_num("TotalItemsInView", v))
                .transpose()?
                .unwrap_or(0),
            includes_last_item_in_range: set
                .attribute("IncludesLastItemInRange")
                .map(|v| parse_bool("IncludesLastItemInRange", v))
                .transpose()?
                .unwrap_or(true),
            resolutions: set
                .children_named(NS_TYPES, "Resolution")
                .map(|r| Resolution {
                    mailbox: r.t("Mailbox").map(EmailAddress::parse).unwrap_or_default(),
                    contact_display_name: r.t("Contact").and_then(|c| c.t_text("DisplayName")).map(str::to_string),
                })
                .collect(),
        })
    })
}
