//! ConvertId — <https://learn.microsoft.com/exchange/client-developer/web-service-reference/convertid-operation>
//!
//! Converts item ids between formats (`EwsId`, `EwsLegacyId`, `EntryId`, `HexEntryId`,
//! `StoreId`, `OwaId` in the Exchange 2013 SP1 schema; Exchange Online adds `RestId` and
//! `RestImmutableEntryId`, the id Graph uses): how an id seen over EWS is found over Graph.

use super::super::envelope::expect_operation;
use super::super::xml::{Node, NodeExt, WireError, XmlWriter, NS_TYPES};
use super::{parse_messages, write_messages, Message};

/// `t:AlternateId`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AlternateId {
    pub format: String,
    pub id: String,
    pub mailbox: String,
}

impl AlternateId {
    fn parse(node: Node<'_, '_>) -> Result<Self, WireError> {
        let req = |a: &str| {
            node.attribute(a).map(str::to_string).ok_or_else(|| WireError::missing(format!("AlternateId/@{a}")))
        };
        Ok(AlternateId { format: req("Format")?, id: req("Id")?, mailbox: req("Mailbox")? })
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Request {
    pub destination_format: String,
    pub source_ids: Vec<AlternateId>,
}

impl Request {
    pub fn write(&self, w: &mut XmlWriter) {
        w.open("m:ConvertId", &[("DestinationFormat", &self.destination_format)]).open("m:SourceIds", &[]);
        for s in &self.source_ids {
            w.empty("t:AlternateId", &[("Format", &s.format), ("Id", &s.id), ("Mailbox", &s.mailbox)]);
        }
        w.close("m:SourceIds").close("m:ConvertId");
    }

    pub fn parse(body: Node<'_, '_>) -> Result<Self, WireError> {
        expect_operation(body, "ConvertId")?;
        let ids = body.m("SourceIds").ok_or_else(|| WireError::missing("ConvertId/SourceIds"))?;
        Ok(Request {
            destination_format: body
                .attribute("DestinationFormat")
                .ok_or_else(|| WireError::missing("ConvertId/@DestinationFormat"))?
                .to_string(),
            source_ids: ids
                .children_named(NS_TYPES, "AlternateId")
                .map(AlternateId::parse)
                .collect::<Result<_, _>>()?,
        })
    }
}

pub type Response = Vec<Message<AlternateId>>;

pub fn write_response(w: &mut XmlWriter, r: &Response) {
    write_messages(w, "ConvertId", r, &[], |w, a| {
        w.empty(
            "m:AlternateId",
            &[("xsi:type", "t:AlternateIdType"), ("Format", &a.format), ("Id", &a.id), ("Mailbox", &a.mailbox)],
        );
    });
}

pub fn parse_response(body: Node<'_, '_>) -> Result<Response, WireError> {
    parse_messages(body, "ConvertId", |m| {
        AlternateId::parse(
            m.m("AlternateId").ok_or_else(|| WireError::missing("ConvertIdResponseMessage/AlternateId"))?,
        )
    })
}
