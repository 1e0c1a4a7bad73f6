//! EWS types shared by several operations — <https://learn.microsoft.com/exchange/client-developer/web-service-reference/ews-xml-elements-in-exchange>
//!
//! Names follow the schema (`types.xsd`): `ItemId` with `Id` and `ChangeKey`, `CalendarItem`
//! with `Start`, `End`, `LegacyFreeBusyStatus`, `RequiredAttendees`, … Values stay as the wire
//! writes them (date-times as `xs:dateTime` text, enumerations as their names): reading their
//! meaning is `convert.rs`'s job. Every type can be written and read, because the simulator
//! answers with the same types calbridge sends; `write` emits elements in schema order.

use std::collections::HashMap;

use super::xml::{attrs, opt_bool, opt_string, parse_bool, parse_num, Node, NodeExt, WireError, XmlWriter, NS_TYPES};

/// `t:ItemId` (also `t:FolderId`, `t:RootItemId`, …: `Id` and `ChangeKey`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct ItemId {
    pub id: String,
    pub change_key: Option<String>,
}

impl ItemId {
    pub fn new(id: impl Into<String>, change_key: Option<String>) -> Self {
        ItemId { id: id.into(), change_key }
    }

    pub fn write(&self, w: &mut XmlWriter, element: &str) {
        w.empty(element, &attrs(&[("Id", Some(&self.id)), ("ChangeKey", self.change_key.as_deref())]));
    }

    pub fn parse(node: Node<'_, '_>) -> Result<Self, WireError> {
        let id = node.attribute("Id").ok_or_else(|| WireError::missing(format!("{}/@Id", node.local())))?;
        Ok(ItemId { id: id.trim().to_string(), change_key: node.attribute("ChangeKey").map(str::to_string) })
    }
}

/// A reference to an item in a request: a plain item, one occurrence of a series
/// (`t:OccurrenceItemId`), or a series' master (`t:RecurringMasterItemId`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ItemRef {
    Item(ItemId),
    Occurrence { recurring_master_id: String, change_key: Option<String>, instance_index: u32 },
    RecurringMaster { occurrence_id: String, change_key: Option<String> },
}

impl ItemRef {
    pub fn write(&self, w: &mut XmlWriter) {
        match self {
            ItemRef::Item(id) => id.write(w, "t:ItemId"),
            ItemRef::Occurrence { recurring_master_id, change_key, instance_index } => {
                let idx = instance_index.to_string();
                w.empty(
                    "t:OccurrenceItemId",
                    &attrs(&[
                        ("RecurringMasterId", Some(recurring_master_id)),
                        ("ChangeKey", change_key.as_deref()),
                        ("InstanceIndex", Some(&idx)),
                    ]),
                );
            }
            ItemRef::RecurringMaster { occurrence_id, change_key } => {
                w.empty(
                    "t:RecurringMasterItemId",
                    &attrs(&[("OccurrenceId", Some(occurrence_id)), ("ChangeKey", change_key.as_deref())]),
                );
            }
        }
    }

    /// Reads one `t:ItemId`, `t:OccurrenceItemId` or `t:RecurringMasterItemId`; `None` for
    /// other elements.
    pub fn parse(node: Node<'_, '_>) -> Option<Result<Self, WireError>> {
        if node.tag_name().namespace() != Some(NS_TYPES) {
            return None;
        }
        let ck = node.attribute("ChangeKey").map(str::to_string);
        Some(match node.local() {
            "ItemId" => ItemId::parse(node).map(ItemRef::Item),
            "OccurrenceItemId" => (|| {
                Ok(ItemRef::Occurrence {
                    recurring_master_id: node
                        .attribute("RecurringMasterId")
                        .ok_or_else(|| WireError::missing("OccurrenceItemId/@RecurringMasterId"))?
                        .to_string(),
                    change_key: ck,
                    instance_index: parse_num(
                        "OccurrenceItemId/@InstanceIndex",
                        node.attribute("InstanceIndex").unwrap_or(""),
                    )?,
                })
            })(),
            "RecurringMasterItemId" => node
                .attribute("OccurrenceId")
                .ok_or_else(|| WireError::missing("RecurringMasterItemId/@OccurrenceId"))
                .map(|o| ItemRef::RecurringMaster { occurrence_id: o.to_string(), change_key: ck }),
            _ => return None,
        })
    }

    /// Every item reference among `node`'s children.
    pub fn parse_all(node: Node<'_, '_>) -> Result<Vec<ItemRef>, WireError> {
        node.elements().filter_map(ItemRef::parse).collect()
    }
}

/// A folder in a request: `t:FolderId` or `t:DistinguishedFolderId` (optionally in another
/// mailbox, `t:Mailbox/t:EmailAddress`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FolderRef {
    Id(ItemId),
    Distinguished { id: String, change_key: Option<String>, mailbox: Option<String> },
}

impl FolderRef {
    /// The default calendar of `mailbox` (the caller's own when `None`).
    pub fn calendar(mailbox: Option<&str>) -> Self {
        FolderRef::Distinguished { id: "calendar".into(), change_key: None, mailbox: mailbox.map(str::to_string) }
    }

    pub fn write(&self, w: &mut XmlWriter) {
        match self {
            FolderRef::Id(id) => id.write(w, "t:FolderId"),
            FolderRef::Distinguished { id, change_key, mailbox } => {
                let a = attrs(&[("Id", Some(id)), ("ChangeKey", change_key.as_deref())]);
                match mailbox {
                    None => {
                        w.empty("t:DistinguishedFolderId", &a);
                    }
                    Some(m) => {
                        w.open("t:DistinguishedFolderId", &a);
                        w.open("t:Mailbox", &[]).leaf("t:EmailAddress", m).close("t:Mailbox");
                        w.close("t:DistinguishedFolderId");
                    }
                }
            }
        }
    }

    pub fn parse(node: Node<'_, '_>) -> Option<Result<Self, WireError>> {
        if node.tag_name().namespace() != Some(NS_TYPES) {
            return None;
        }
        Some(match node.local() {
            "FolderId" => ItemId::parse(node).map(FolderRef::Id),
            "DistinguishedFolderId" => match node.attribute("Id") {
                Some(id) => Ok(FolderRef::Distinguished {
                    id: id.to_string(),
                    change_key: node.attribute("ChangeKey").map(str::to_string),
                    mailbox: node.t("Mailbox").and_then(|m| m.t_text("EmailAddress")).map(|s| s.trim().to_string()),
                }),
                None => Err(WireError::missing("DistinguishedFolderId/@Id")),
            },
            _ => return None,
        })
    }

    pub fn parse_all(node: Node<'_, '_>) -> Result<Vec<FolderRef>, WireError> {
        node.elements().filter_map(FolderRef::parse).collect()
    }
}

/// `t:Mailbox` (EmailAddressType): a person, room or equipment mailbox, or a contact.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct EmailAddress {
    pub name: Option<String>,
    pub email_address: Option<String>,
    /// `SMTP`, `EX`.
    pub routing_type: Option<String>,
    /// `Mailbox`, `PublicDL`, `PrivateDL`, `Contact`, `PublicFolder`, `Unknown`, `OneOff`, `GroupMailbox`.
    pub mailbox_type: Option<String>,
}

impl EmailAddress {
    pub fn smtp(name: Option<&str>, address: &str) -> Self {
        EmailAddress {
            name: name.map(str::to_string),
            email_address: Some(address.to_string()),
            routing_type: Some("SMTP".into()),
            mailbox_type: Some("Mailbox".into()),
        }
    }

    pub fn write(&self, w: &mut XmlWriter, element: &str) {
        w.open(element, &[]);
        w.leaf_opt("t:Name", self.name.as_deref());
        w.leaf_opt("t:EmailAddress", self.email_address.as_deref());
        w.leaf_opt("t:RoutingType", self.routing_type.as_deref());
        w.leaf_opt("t:MailboxType", self.mailbox_type.as_deref());
        w.close(element);
    }

    pub fn parse(node: Node<'_, '_>) -> Self {
        EmailAddress {
            name: opt_string(node, "Name"),
            email_address: node.t_text("EmailAddress").map(|s| s.trim().to_string()),
            routing_type: opt_string(node, "RoutingType"),
            mailbox_type: opt_string(node, "MailboxType"),
        }
    }
}

/// `t:Attendee`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct Attendee {
    pub mailbox: EmailAddress,
    /// `Unknown`, `Organizer`, `Tentative`, `Accept`, `Decline`, `NoResponseReceived`.
    pub response_type: Option<String>,
    pub last_response_time: Option<String>,
}

impl Attendee {
    fn write(&self, w: &mut XmlWriter) {
        w.open("t:Attendee", &[]);
        self.mailbox.write(w, "t:Mailbox");
        w.leaf_opt("t:ResponseType", self.response_type.as_deref());
        w.leaf_opt("t:LastResponseTime", self.last_response_time.as_deref());
        w.close("t:Attendee");
    }

    fn parse(node: Node<'_, '_>) -> Self {
        Attendee {
            mailbox: node.t("Mailbox").map(EmailAddress::parse).unwrap_or_default(),
            response_type: opt_string(node, "ResponseType"),
            last_response_time: opt_string(node, "LastResponseTime"),
        }
    }
}

fn write_attendees(w: &mut XmlWriter, element: &str, list: &Option<Vec<Attendee>>) {
    if let Some(list) = list.as_ref().filter(|l| !l.is_empty()) {
        w.open(element, &[]);
        for a in list {
            a.write(w);
        }
        w.close(element);
    }
}

fn parse_attendees(list: Option<Node<'_, '_>>) -> Option<Vec<Attendee>> {
    list.map(|l| l.children_named(NS_TYPES, "Attendee").map(Attendee::parse).collect())
}

/// `t:Body` with its `BodyType` (`HTML` or `Text`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct Body {
    pub body_type: String,
    pub text: String,
}

/// `t:ExtendedFieldURI`: a MAPI property, by set and name, set and id, or tag.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct ExtendedFieldUri {
    /// `PublicStrings`, `Common`, `Appointment`, …
    pub distinguished_property_set_id: Option<String>,
    /// A GUID.
    pub property_set_id: Option<String>,
    /// `0x…` or a decimal tag.
    pub property_tag: Option<String>,
    pub property_name: Option<String>,
    pub property_id: Option<i32>,
    /// `String`, `Integer`, `Boolean`, `SystemTime`, `Binary`, …
    pub property_type: String,
}

impl ExtendedFieldUri {
    pub fn write(&self, w: &mut XmlWriter) {
        let id = self.property_id.map(|i| i.to_string());
        w.empty(
            "t:ExtendedFieldURI",
            &attrs(&[
                ("DistinguishedPropertySetId", self.distinguished_property_set_id.as_deref()),
                ("PropertySetId", self.property_set_id.as_deref()),
                ("PropertyTag", self.property_tag.as_deref()),
                ("PropertyName", self.property_name.as_deref()),
                ("PropertyId", id.as_deref()),
                ("PropertyType", Some(&self.property_type)),
            ]),
        );
    }

    pub fn parse(node: Node<'_, '_>) -> Result<Self, WireError> {
        let s = |n: &str| node.attribute(n).map(str::to_string);
        Ok(ExtendedFieldUri {
            distinguished_property_set_id: s("DistinguishedPropertySetId"),
            property_set_id: s("PropertySetId"),
            property_tag: s("PropertyTag"),
            property_name: s("PropertyName"),
            property_id: node
                .attribute("PropertyId")
                .map(|v| parse_num("ExtendedFieldURI/@PropertyId", v))
                .transpose()?,
            property_type: s("PropertyType").ok_or_else(|| WireError::missing("ExtendedFieldURI/@PropertyType"))?,
        })
    }

    /// Whether two URIs name the same property (GUIDs compared case-insensitively).
    pub fn same_property(&self, other: &ExtendedFieldUri) -> bool {
        let eq = |a: &Option<String>, b: &Option<String>| match (a, b) {
            (Some(a), Some(b)) => a.eq_ignore_ascii_case(b),
            (None, None) => true,
            _ => false,
        };
        eq(&self.distinguished_property_set_id, &other.distinguished_property_set_id)
            && eq(&self.property_set_id, &other.property_set_id)
            && eq(&self.property_tag, &other.property_tag)
            && self.property_name == other.property_name
            && self.property_id == other.property_id
    }
}

/// `t:ExtendedProperty`: a URI and a value (or, for multi-valued types, values).
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct ExtendedProperty {
    pub uri: ExtendedFieldUri,
    pub value: Option<String>,
    pub values: Option<Vec<String>>,
}

impl ExtendedProperty {
    fn write(&self, w: &mut XmlWriter) {
        w.open("t:ExtendedProperty", &[]);
        self.uri.write(w);
        match &self.values {
            Some(values) => {
                w.open("t:Values", &[]);
                for v in values {
                    w.leaf("t:Value", v);
                }
                w.close("t:Values");
            }
            None => {
                w.leaf("t:Value", self.value.as_deref().unwrap_or(""));
            }
        }
        w.close("t:ExtendedProperty");
    }

    fn parse(node: Node<'_, '_>) -> Result<Self, WireError> {
        let uri = ExtendedFieldUri::parse(
            node.t("ExtendedFieldURI").ok_or_else(|| WireError::missing("ExtendedProperty/ExtendedFieldURI"))?,
        )?;
        Ok(ExtendedProperty {
            uri,
            value: opt_string(node, "Value"),
            values: node
                .t("Values")
                .map(|v| v.children_named(NS_TYPES, "Value").map(|x| x.text_or_empty().to_string()).collect()),
        })
    }
}

/// A recurrence pattern (`t:DailyRecurrence`, `t:WeeklyRecurrence`, …).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum RecurrencePattern {
    RelativeYearly {
        days_of_week: String,
        day_of_week_index: String,
        month: String,
    },
    AbsoluteYearly {
        day_of_month: u32,
        month: String,
    },
    RelativeMonthly {
        interval: u32,
        days_of_week: String,
        day_of_week_index: String,
    },
    AbsoluteMonthly {
        interval: u32,
        day_of_month: u32,
    },
    /// `days_of_week` is a space-separated list (`Monday Wednesday`).
    Weekly {
        interval: u32,
        days_of_week: String,
        first_day_of_week: Option<String>,
    },
    Daily {
        interval: u32,
    },
}

/// A recurrence range. Dates are `xs:date` text as written (`2026-11-02`, possibly with an offset).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum RecurrenceRange {
    NoEnd { start_date: String },
    EndDate { start_date: String, end_date: String },
    Numbered { start_date: String, number_of_occurrences: u32 },
}

/// `t:Recurrence`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Recurrence {
    pub pattern: RecurrencePattern,
    pub range: RecurrenceRange,
}

impl Recurrence {
    fn write(&self, w: &mut XmlWriter) {
        w.open("t:Recurrence", &[]);
        let n = |v: &u32| v.to_string();
        match &self.pattern {
            RecurrencePattern::RelativeYearly { days_of_week, day_of_week_index, month } => {
                w.open("t:RelativeYearlyRecurrence", &[]);
                w.leaf("t:DaysOfWeek", days_of_week).leaf("t:DayOfWeekIndex", day_of_week_index).leaf("t:Month", month);
                w.close("t:RelativeYearlyRecurrence");
            }
            RecurrencePattern::AbsoluteYearly { day_of_month, month } => {
                w.open("t:AbsoluteYearlyRecurrence", &[]);
                w.leaf("t:DayOfMonth", &n(day_of_month)).leaf("t:Month", month);
                w.close("t:AbsoluteYearlyRecurrence");
            }
            RecurrencePattern::RelativeMonthly { interval, days_of_week, day_of_week_index } => {
                w.open("t:RelativeMonthlyRecurrence", &[]);
                w.leaf("t:Interval", &n(interval)).leaf("t:DaysOfWeek", days_of_week);
                w.leaf("t:DayOfWeekIndex", day_of_week_index);
                w.close("t:RelativeMonthlyRecurrence");
            }
            RecurrencePattern::AbsoluteMonthly { interval, day_of_month } => {
                w.open("t:AbsoluteMonthlyRecurrence", &[]);
                w.leaf("t:Interval", &n(interval)).leaf("t:DayOfMonth", &n(day_of_month));
                w.close("t:AbsoluteMonthlyRecurrence");
            }
            RecurrencePattern::Weekly { interval, days_of_week, first_day_of_week } => {
                w.open("t:WeeklyRecurrence", &[]);
                w.leaf("t:Interval", &n(interval)).leaf("t:DaysOfWeek", days_of_week);
                w.leaf_opt("t:FirstDayOfWeek", first_day_of_week.as_deref());
                w.close("t:WeeklyRecurrence");
            }
            RecurrencePattern::Daily { interval } => {
                w.open("t:DailyRecurrence", &[]).leaf("t:Interval", &n(interval)).close("t:DailyRecurrence");
            }
        }
        match &self.range {
            RecurrenceRange::NoEnd { start_date } => {
                w.open("t:NoEndRecurrence", &[]).leaf("t:StartDate", start_date).close("t:NoEndRecurrence");
            }
            RecurrenceRange::EndDate { start_date, end_date } => {
                w.open("t:EndDateRecurrence", &[]).leaf("t:StartDate", start_date).leaf("t:EndDate", end_date);
                w.close("t:EndDateRecurrence");
            }
            RecurrenceRange::Numbered { start_date, number_of_occurrences } => {
                w.open("t:NumberedRecurrence", &[]).leaf("t:StartDate", start_date);
                w.leaf("t:NumberOfOccurrences", &n(number_of_occurrences)).close("t:NumberedRecurrence");
            }
        }
        w.close("t:Recurrence");
    }

    fn parse(node: Node<'_, '_>) -> Result<Self, WireError> {
        let text = |n: Node<'_, '_>, name: &str| -> Result<String, WireError> {
            n.t_text(name)
                .map(|s| s.trim().to_string())
                .ok_or_else(|| WireError::missing(format!("{}/{name}", n.local())))
        };
        let num = |n: Node<'_, '_>, name: &str| -> Result<u32, WireError> { parse_num(name, &text(n, name)?) };
        let mut pattern = None;
        let mut range = None;
        for c in node.elements() {
            match c.local() {
                "RelativeYearlyRecurrence" => {
                    pattern = Some(RecurrencePattern::RelativeYearly {
                        days_of_week: text(c, "DaysOfWeek")?,
                        day_of_week_index: text(c, "DayOfWeekIndex")?,
                        month: text(c, "Month")?,
                    })
                }
                "AbsoluteYearlyRecurrence" => {
                    pattern = Some(RecurrencePattern::AbsoluteYearly {
                        day_of_month: num(c, "DayOfMonth")?,
                        month: text(c, "Month")?,
                    })
                }
                "RelativeMonthlyRecurrence" => {
                    pattern = Some(RecurrencePattern::RelativeMonthly {
                        interval: num(c, "Interval")?,
                        days_of_week: text(c, "DaysOfWeek")?,
                        day_of_week_index: text(c, "DayOfWeekIndex")?,
                    })
                }
                "AbsoluteMonthlyRecurrence" => {
                    pattern = Some(RecurrencePattern::AbsoluteMonthly {
                        interval: num(c, "Interval")?,
                        day_of_month: num(c, "DayOfMonth")?,
                    })
                }
                "WeeklyRecurrence" => {
                    pattern = Some(RecurrencePattern::Weekly {
                        interval: num(c, "Interval")?,
                        days_of_week: text(c, "DaysOfWeek")?,
                        first_day_of_week: opt_string(c, "FirstDayOfWeek"),
                    })
                }
                "DailyRecurrence" => pattern = Some(RecurrencePattern::Daily { interval: num(c, "Interval")? }),
                "NoEndRecurrence" => range = Some(RecurrenceRange::NoEnd { start_date: text(c, "StartDate")? }),
                "EndDateRecurrence" => {
                    range = Some(RecurrenceRange::EndDate {
                        start_date: text(c, "StartDate")?,
                        end_date: text(c, "EndDate")?,
                    })
                }
                "NumberedRecurrence" => {
                    range = Some(RecurrenceRange::Numbered {
                        start_date: text(c, "StartDate")?,
                        number_of_occurrences: num(c, "NumberOfOccurrences")?,
                    })
                }
                other => return Err(WireError::invalid("Recurrence pattern or range", other)),
            }
        }
        Ok(Recurrence {
            pattern: pattern.ok_or_else(|| WireError::missing("Recurrence's pattern"))?,
            range: range.ok_or_else(|| WireError::missing("Recurrence's range"))?,
        })
    }
}

/// `t:Occurrence`, `t:FirstOccurrence`, `t:LastOccurrence` (OccurrenceInfoType).
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct OccurrenceInfo {
    pub item_id: ItemId,
    pub start: String,
    pub end: String,
    pub original_start: String,
}

impl OccurrenceInfo {
    fn write(&self, w: &mut XmlWriter, element: &str) {
        w.open(element, &[]);
        self.item_id.write(w, "t:ItemId");
        w.leaf("t:Start", &self.start).leaf("t:End", &self.end).leaf("t:OriginalStart", &self.original_start);
        w.close(element);
    }

    fn parse(node: Node<'_, '_>) -> Result<Self, WireError> {
        let req = |n: &str| {
            node.t_text(n).map(|s| s.trim().to_string()).ok_or_else(|| WireError::missing(format!("Occurrence/{n}")))
        };
        Ok(OccurrenceInfo {
            item_id: ItemId::parse(node.t("ItemId").ok_or_else(|| WireError::missing("Occurrence/ItemId"))?)?,
            start: req("Start")?,
            end: req("End")?,
            original_start: req("OriginalStart")?,
        })
    }
}

/// `t:StartTimeZone` / `t:EndTimeZone` / `t:TimeZoneDefinition`: by `Id` (a Windows zone id);
/// the periods and transitions Exchange may add are not read.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct TimeZoneRef {
    pub id: Option<String>,
    pub name: Option<String>,
}

impl TimeZoneRef {
    pub fn id(id: impl Into<String>) -> Self {
        TimeZoneRef { id: Some(id.into()), name: None }
    }
    fn write(&self, w: &mut XmlWriter, element: &str) {
        w.empty(element, &attrs(&[("Id", self.id.as_deref()), ("Name", self.name.as_deref())]));
    }
    fn parse(node: Node<'_, '_>) -> Self {
        TimeZoneRef { id: node.attribute("Id").map(str::to_string), name: node.attribute("Name").map(str::to_string) }
    }
}

/// An item: a calendar item (`t:CalendarItem`), or another kind an answer may carry
/// (`t:Message`, `t:MeetingRequest`, `t:Item`, …; only the common fields are read then).
/// Every field is optional, because requests and answers carry only the fields asked for.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Item {
    /// The element's local name: `CalendarItem`, `Message`, `MeetingRequest`, `Item`, …
    pub element: String,
    // ItemType, in schema order.
    pub item_id: Option<ItemId>,
    pub parent_folder_id: Option<ItemId>,
    pub item_class: Option<String>,
    pub subject: Option<String>,
    /// `Normal`, `Personal`, `Private`, `Confidential`.
    pub sensitivity: Option<String>,
    pub body: Option<Body>,
    pub date_time_received: Option<String>,
    pub size: Option<i64>,
    pub categories: Option<Vec<String>>,
    pub importance: Option<String>,
    pub date_time_sent: Option<String>,
    pub date_time_created: Option<String>,
    pub reminder_is_set: Option<bool>,
    pub reminder_minutes_before_start: Option<i32>,
    pub display_cc: Option<String>,
    pub display_to: Option<String>,
    pub has_attachments: Option<bool>,
    pub extended_properties: Vec<ExtendedProperty>,
    pub culture: Option<String>,
    pub last_modified_name: Option<String>,
    pub last_modified_time: Option<String>,
    pub is_associated: Option<bool>,
    // CalendarItemType, in schema order.
    pub uid: Option<String>,
    pub recurrence_id: Option<String>,
    pub date_time_stamp: Option<String>,
    pub start: Option<String>,
    pub end: Option<String>,
    pub original_start: Option<String>,
    pub is_all_day_event: Option<bool>,
    /// `Free`, `Tentative`, `Busy`, `OOF`, `WorkingElsewhere`, `NoData`.
    pub legacy_free_busy_status: Option<String>,
    pub location: Option<String>,
    pub is_meeting: Option<bool>,
    pub is_cancelled: Option<bool>,
    pub is_recurring: Option<bool>,
    pub meeting_request_was_sent: Option<bool>,
    pub is_response_requested: Option<bool>,
    /// `Single`, `Occurrence`, `Exception`, `RecurringMaster`.
    pub calendar_item_type: Option<String>,
    pub my_response_type: Option<String>,
    pub organizer: Option<EmailAddress>,
    pub required_attendees: Option<Vec<Attendee>>,
    pub optional_attendees: Option<Vec<Attendee>>,
    pub resources: Option<Vec<Attendee>>,
    pub conflicting_meeting_count: Option<i32>,
    pub adjacent_meeting_count: Option<i32>,
    pub duration: Option<String>,
    /// The legacy `TimeZone` display string.
    pub time_zone: Option<String>,
    pub appointment_reply_time: Option<String>,
    pub appointment_sequence_number: Option<i32>,
    pub appointment_state: Option<i32>,
    pub recurrence: Option<Recurrence>,
    pub first_occurrence: Option<OccurrenceInfo>,
    pub last_occurrence: Option<OccurrenceInfo>,
    pub modified_occurrences: Option<Vec<OccurrenceInfo>>,
    /// `DeletedOccurrence/Start` values.
    pub deleted_occurrences: Option<Vec<String>>,
    pub start_time_zone: Option<TimeZoneRef>,
    pub end_time_zone: Option<TimeZoneRef>,
    pub conference_type: Option<i32>,
    pub allow_new_time_proposal: Option<bool>,
    pub is_online_meeting: Option<bool>,
    pub is_organizer: Option<bool>,
    // Meeting messages (MeetingMessageType): the calendar item they belong to.
    pub associated_calendar_item_id: Option<ItemId>,
    pub response_type: Option<String>,
}

impl Item {
    /// An empty `t:CalendarItem`.
    pub fn calendar() -> Self {
        Item { element: "CalendarItem".into(), ..Default::default() }
    }

    pub fn is_calendar_item(&self) -> bool {
        self.element == "CalendarItem"
    }

    /// The extended property named `uri`, if the item carries it.
    pub fn extended(&self, uri: &ExtendedFieldUri) -> Option<&ExtendedProperty> {
        self.extended_properties.iter().find(|p| p.uri.same_property(uri))
    }

    /// Writes `<t:{element}>…</t:{element}>` with the fields that are set, in schema order.
    pub fn write(&self, w: &mut XmlWriter) {
        let element = format!("t:{}", if self.element.is_empty() { "CalendarItem" } else { &self.element });
        w.open(&element, &[]);
        if let Some(id) = &self.item_id {
            id.write(w, "t:ItemId");
        }
        if let Some(id) = &self.parent_folder_id {
            id.write(w, "t:ParentFolderId");
        }
        w.leaf_opt("t:ItemClass", self.item_class.as_deref());
        w.leaf_opt("t:Subject", self.subject.as_deref());
        w.leaf_opt("t:Sensitivity", self.sensitivity.as_deref());
        if let Some(b) = &self.body {
            w.leaf_with("t:Body", &[("BodyType", &b.body_type)], &b.text);
        }
        w.leaf_opt("t:DateTimeReceived", self.date_time_received.as_deref());
        w.num_opt("t:Size", self.size);
        if let Some(cats) = &self.categories {
            w.open("t:Categories", &[]);
            for c in cats {
                w.leaf("t:String", c);
            }
            w.close("t:Categories");
        }
        w.leaf_opt("t:Importance", self.importance.as_deref());
        w.leaf_opt("t:DateTimeSent", self.date_time_sent.as_deref());
        w.leaf_opt("t:DateTimeCreated", self.date_time_created.as_deref());
        w.bool_opt("t:ReminderIsSet", self.reminder_is_set);
        w.num_opt("t:ReminderMinutesBeforeStart", self.reminder_minutes_before_start);
        w.leaf_opt("t:DisplayCc", self.display_cc.as_deref());
        w.leaf_opt("t:DisplayTo", self.display_to.as_deref());
        w.bool_opt("t:HasAttachments", self.has_attachments);
        for p in &self.extended_properties {
            p.write(w);
        }
        w.leaf_opt("t:Culture", self.culture.as_deref());
        w.leaf_opt("t:LastModifiedName", self.last_modified_name.as_deref());
        w.leaf_opt("t:LastModifiedTime", self.last_modified_time.as_deref());
        w.bool_opt("t:IsAssociated", self.is_associated);
        if self.element == "CalendarItem" {
            self.write_calendar(w);
        } else if let Some(id) = &self.associated_calendar_item_id {
            id.write(w, "t:AssociatedCalendarItemId");
        }
        w.close(&element);
    }

    fn write_calendar(&self, w: &mut XmlWriter) {
        w.leaf_opt("t:UID", self.uid.as_deref());
        w.leaf_opt("t:RecurrenceId", self.recurrence_id.as_deref());
        w.leaf_opt("t:DateTimeStamp", self.date_time_stamp.as_deref());
        w.leaf_opt("t:Start", self.start.as_deref());
        w.leaf_opt("t:End", self.end.as_deref());
        w.leaf_opt("t:OriginalStart", self.original_start.as_deref());
        w.bool_opt("t:IsAllDayEvent", self.is_all_day_event);
        w.leaf_opt("t:LegacyFreeBusyStatus", self.legacy_free_busy_status.as_deref());
        w.leaf_opt("t:Location", self.location.as_deref());
        w.bool_opt("t:IsMeeting", self.is_meeting);
        w.bool_opt("t:IsCancelled", self.is_cancelled);
        w.bool_opt("t:IsRecurring", self.is_recurring);
        w.bool_opt("t:MeetingRequestWasSent", self.meeting_request_was_sent);
        w.bool_opt("t:IsResponseRequested", self.is_response_requested);
        w.leaf_opt("t:CalendarItemType", self.calendar_item_type.as_deref());
        w.leaf_opt("t:MyResponseType", self.my_response_type.as_deref());
        if let Some(o) = &self.organizer {
            w.open("t:Organizer", &[]);
            o.write(w, "t:Mailbox");
            w.close("t:Organizer");
        }
        write_attendees(w, "t:RequiredAttendees", &self.required_attendees);
        write_attendees(w, "t:OptionalAttendees", &self.optional_attendees);
        write_attendees(w, "t:Resources", &self.resources);
        w.num_opt("t:ConflictingMeetingCount", self.conflicting_meeting_count);
        w.num_opt("t:AdjacentMeetingCount", self.adjacent_meeting_count);
        w.leaf_opt("t:Duration", self.duration.as_deref());
        w.leaf_opt("t:TimeZone", self.time_zone.as_deref());
        w.leaf_opt("t:AppointmentReplyTime", self.appointment_reply_time.as_deref());
        w.num_opt("t:AppointmentSequenceNumber", self.appointment_sequence_number);
        w.num_opt("t:AppointmentState", self.appointment_state);
        if let Some(r) = &self.recurrence {
            r.write(w);
        }
        if let Some(o) = &self.first_occurrence {
            o.write(w, "t:FirstOccurrence");
        }
        if let Some(o) = &self.last_occurrence {
            o.write(w, "t:LastOccurrence");
        }
        if let Some(list) = self.modified_occurrences.as_ref().filter(|l| !l.is_empty()) {
            w.open("t:ModifiedOccurrences", &[]);
            for o in list {
                o.write(w, "t:Occurrence");
            }
            w.close("t:ModifiedOccurrences");
        }
        if let Some(list) = self.deleted_occurrences.as_ref().filter(|l| !l.is_empty()) {
            w.open("t:DeletedOccurrences", &[]);
            for s in list {
                w.open("t:DeletedOccurrence", &[]).leaf("t:Start", s).close("t:DeletedOccurrence");
            }
            w.close("t:DeletedOccurrences");
        }
        if let Some(z) = &self.start_time_zone {
            z.write(w, "t:StartTimeZone");
        }
        if let Some(z) = &self.end_time_zone {
            z.write(w, "t:EndTimeZone");
        }
        w.num_opt("t:ConferenceType", self.conference_type);
        w.bool_opt("t:AllowNewTimeProposal", self.allow_new_time_proposal);
        w.bool_opt("t:IsOnlineMeeting", self.is_online_meeting);
        w.bool_opt("t:IsOrganizer", self.is_organizer);
    }

    /// Reads any item element (`t:CalendarItem`, `t:Message`, …).
    pub fn parse(node: Node<'_, '_>) -> Result<Self, WireError> {
        // The item's `t:` children by name, the first of each: finding each of some sixty
        // fields by scanning the children would read them all sixty times (a GetItem answer
        // holds hundreds of items).
        let mut fields: HashMap<&str, Node<'_, '_>> = HashMap::with_capacity(64);
        for c in node.elements().filter(|c| c.tag_name().namespace() == Some(NS_TYPES)) {
            fields.entry(c.local()).or_insert(c);
        }
        let t = |name: &str| fields.get(name).copied();
        let text = |name: &str| t(name).map(|n| n.text_or_empty());
        let num = |name: &str| -> Result<Option<i32>, WireError> { text(name).map(|s| parse_num(name, s)).transpose() };
        let s = |name: &str| text(name).map(str::to_string);
        let b = |name: &str| text(name).map(|v| parse_bool(name, v)).transpose();
        let id = |name: &str| t(name).map(ItemId::parse).transpose();
        Ok(Item {
            element: node.local().to_string(),
            item_id: id("ItemId")?,
            parent_folder_id: id("ParentFolderId")?,
            item_class: s("ItemClass"),
            subject: s("Subject"),
            sensitivity: s("Sensitivity"),
            body: t("Body").map(|n| Body {
                body_type: n.attribute("BodyType").unwrap_or("Text").to_string(),
                text: n.text_or_empty().to_string(),
            }),
            date_time_received: s("DateTimeReceived"),
            size: text("Size").map(|v| parse_num("Size", v)).transpose()?,
            categories: t("Categories")
                .map(|c| c.children_named(NS_TYPES, "String").map(|x| x.text_or_empty().to_string()).collect()),
            importance: s("Importance"),
            date_time_sent: s("DateTimeSent"),
            date_time_created: s("DateTimeCreated"),
            reminder_is_set: b("ReminderIsSet")?,
            reminder_minutes_before_start: num("ReminderMinutesBeforeStart")?,
            display_cc: s("DisplayCc"),
            display_to: s("DisplayTo"),
            has_attachments: b("HasAttachments")?,
            extended_properties: node
                .children_named(NS_TYPES, "ExtendedProperty")
                .map(ExtendedProperty::parse)
                .collect::<Result<_, _>>()?,
            culture: s("Culture"),
            last_modified_name: s("LastModifiedName"),
            last_modified_time: s("LastModifiedTime"),
            is_associated: b("IsAssociated")?,
            uid: s("UID"),
            recurrence_id: s("RecurrenceId"),
            date_time_stamp: s("DateTimeStamp"),
            start: s("Start"),
            end: s("End"),
            original_start: s("OriginalStart"),
            is_all_day_event: b("IsAllDayEvent")?,
            legacy_free_busy_status: s("LegacyFreeBusyStatus"),
            location: s("Location"),
            is_meeting: b("IsMeeting")?,
            is_cancelled: b("IsCancelled")?,
            is_recurring: b("IsRecurring")?,
            meeting_request_was_sent: b("MeetingRequestWasSent")?,
            is_response_requested: b("IsResponseRequested")?,
            calendar_item_type: s("CalendarItemType"),
            my_response_type: s("MyResponseType"),
            organizer: t("Organizer").and_then(|o| o.t("Mailbox")).map(EmailAddress::parse),
            required_attendees: parse_attendees(t("RequiredAttendees")),
            optional_attendees: parse_attendees(t("OptionalAttendees")),
            resources: parse_attendees(t("Resources")),
            conflicting_meeting_count: num("ConflictingMeetingCount")?,
            adjacent_meeting_count: num("AdjacentMeetingCount")?,
            duration: s("Duration"),
            time_zone: s("TimeZone"),
            appointment_reply_time: s("AppointmentReplyTime"),
            appointment_sequence_number: num("AppointmentSequenceNumber")?,
            appointment_state: num("AppointmentState")?,
            recurrence: t("Recurrence").map(Recurrence::parse).transpose()?,
            first_occurrence: t("FirstOccurrence").map(OccurrenceInfo::parse).transpose()?,
            last_occurrence: t("LastOccurrence").map(OccurrenceInfo::parse).transpose()?,
            modified_occurrences: t("ModifiedOccurrences")
                .map(|m| m.children_named(NS_TYPES, "Occurrence").map(OccurrenceInfo::parse).collect::<Result<_, _>>())
                .transpose()?,
            deleted_occurrences: t("DeletedOccurrences").map(|d| {
                d.children_named(NS_TYPES, "DeletedOccurrence")
                    .filter_map(|o| o.t_text("Start").map(|s| s.trim().to_string()))
                    .collect()
            }),
            start_time_zone: t("StartTimeZone").map(TimeZoneRef::parse),
            end_time_zone: t("EndTimeZone").map(TimeZoneRef::parse),
            conference_type: num("ConferenceType")?,
            allow_new_time_proposal: b("AllowNewTimeProposal")?,
            is_online_meeting: b("IsOnlineMeeting")?,
            is_organizer: b("IsOrganizer")?,
            associated_calendar_item_id: id("AssociatedCalendarItemId")?,
            response_type: s("ResponseType"),
        })
    }

    /// Every item element among `node`'s children.
    pub fn parse_all(node: Node<'_, '_>) -> Result<Vec<Item>, WireError> {
        node.elements().filter(|c| c.tag_name().namespace() == Some(NS_TYPES)).map(Item::parse).collect()
    }
}

/// Generates the FieldURI ↔ field table: which `FieldURI` names which field of [`Item`].
macro_rules! field_uris {
    ($($uri:literal => $field:ident),* $(,)?) => {
        /// The `FieldURI`s calbridge reads and writes, in schema order.
        pub const FIELD_URIS: &[&str] = &[$($uri),*];

        impl Item {
            /// Copies the field `uri` names from `from` (an UpdateItem `SetItemField`).
            /// `false` when calbridge does not know the field.
            pub fn set_field(&mut self, uri: &str, from: &Item) -> bool {
                match uri {
                    $($uri => { self.$field = from.$field.clone(); true })*
                    "item:ExtendedProperty" => false,
                    _ => false,
                }
            }

            /// Clears the field `uri` names (an UpdateItem `DeleteItemField`).
            pub fn clear_field(&mut self, uri: &str) -> bool {
                match uri {
                    $($uri => { self.$field = Default::default(); true })*
                    _ => false,
                }
            }

            /// Whether the field `uri` names is set.
            pub fn has_field(&self, uri: &str) -> bool {
                match uri {
                    $($uri => self.$field != Default::default(),)*
                    _ => false,
                }
            }

            /// A copy holding only the fields in `uris` (and the element name); `ItemId` is
            /// kept when `keep_id`.
            pub fn project(&self, uris: &[&str], keep_id: bool) -> Item {
                let mut out = Item { element: self.element.clone(), ..Default::default() };
                if keep_id {
                    out.item_id = self.item_id.clone();
                }
                for uri in uris {
                    out.set_field(uri, self);
                }
                out
            }
        }
    };
}

field_uris! {
    "item:ItemId" => item_id,
    "item:ParentFolderId" => parent_folder_id,
    "item:ItemClass" => item_class,
    "item:Subject" => subject,
    "item:Sensitivity" => sensitivity,
    "item:Body" => body,
    "item:DateTimeReceived" => date_time_received,
    "item:Size" => size,
    "item:Categories" => categories,
    "item:Importance" => importance,
    "item:DateTimeSent" => date_time_sent,
    "item:DateTimeCreated" => date_time_created,
    "item:ReminderIsSet" => reminder_is_set,
    "item:ReminderMinutesBeforeStart" => reminder_minutes_before_start,
    "item:DisplayCc" => display_cc,
    "item:DisplayTo" => display_to,
    "item:HasAttachments" => has_attachments,
    "item:Culture" => culture,
    "item:LastModifiedName" => last_modified_name,
    "item:LastModifiedTime" => last_modified_time,
    "item:IsAssociated" => is_associated,
    "calendar:UID" => uid,
    "calendar:RecurrenceId" => recurrence_id,
    "calendar:DateTimeStamp" => date_time_stamp,
    "calendar:Start" => start,
    "calendar:End" => end,
    "calendar:OriginalStart" => original_start,
    "calendar:IsAllDayEvent" => is_all_day_event,
    "calendar:LegacyFreeBusyStatus" => legacy_free_busy_status,
    "calendar:Location" => location,
    "calendar:IsMeeting" => is_meeting,
    "calendar:IsCancelled" => is_cancelled,
    "calendar:IsRecurring" => is_recurring,
    "calendar:MeetingRequestWasSent" => meeting_request_was_sent,
    "calendar:IsResponseRequested" => is_response_requested,
    "calendar:CalendarItemType" => calendar_item_type,
    "calendar:MyResponseType" => my_response_type,
    "calendar:Organizer" => organizer,
    "calendar:RequiredAttendees" => required_attendees,
    "calendar:OptionalAttendees" => optional_attendees,
    "calendar:Resources" => resources,
    "calendar:ConflictingMeetingCount" => conflicting_meeting_count,
    "calendar:AdjacentMeetingCount" => adjacent_meeting_count,
    "calendar:Duration" => duration,
    "calendar:TimeZone" => time_zone,
    "calendar:AppointmentReplyTime" => appointment_reply_time,
    "calendar:AppointmentSequenceNumber" => appointment_sequence_number,
    "calendar:AppointmentState" => appointment_state,
    "calendar:Recurrence" => recurrence,
    "calendar:FirstOccurrence" => first_occurrence,
    "calendar:LastOccurrence" => last_occurrence,
    "calendar:ModifiedOccurrences" => modified_occurrences,
    "calendar:DeletedOccurrences" => deleted_occurrences,
    "calendar:StartTimeZone" => start_time_zone,
    "calendar:EndTimeZone" => end_time_zone,
    "calendar:ConferenceType" => conference_type,
    "calendar:AllowNewTimeProposal" => allow_new_time_proposal,
    "calendar:IsOnlineMeeting" => is_online_meeting,
    "calendar:IsOrganizer" => is_organizer,
    "meeting:AssociatedCalendarItemId" => associated_calendar_item_id,
    "meeting:ResponseType" => response_type,
}

/// A property path in `AdditionalProperties`, `SetItemField`, `DeleteItemField`, `SortOrder`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum PropertyPath {
    /// `t:FieldURI FieldURI="calendar:Start"`.
    Field(String),
    /// `t:IndexedFieldURI FieldURI="…" FieldIndex="…"`.
    Indexed { uri: String, index: String },
    /// `t:ExtendedFieldURI …`.
    Extended(ExtendedFieldUri),
}

impl PropertyPath {
    pub fn field(uri: &str) -> Self {
        PropertyPath::Field(uri.to_string())
    }

    pub fn write(&self, w: &mut XmlWriter) {
        match self {
            PropertyPath::Field(uri) => {
                w.empty("t:FieldURI", &[("FieldURI", uri)]);
            }
            PropertyPath::Indexed { uri, index } => {
                w.empty("t:IndexedFieldURI", &[("FieldURI", uri), ("FieldIndex", index)]);
            }
            PropertyPath::Extended(x) => x.write(w),
        }
    }

    pub fn parse(node: Node<'_, '_>) -> Option<Result<Self, WireError>> {
        if node.tag_name().namespace() != Some(NS_TYPES) {
            return None;
        }
        Some(match node.local() {
            "FieldURI" => node
                .attribute("FieldURI")
                .map(|u| PropertyPath::Field(u.to_string()))
                .ok_or_else(|| WireError::missing("FieldURI/@FieldURI")),
            "IndexedFieldURI" => match (node.attribute("FieldURI"), node.attribute("FieldIndex")) {
                (Some(u), Some(i)) => Ok(PropertyPath::Indexed { uri: u.to_string(), index: i.to_string() }),
                _ => Err(WireError::missing("IndexedFieldURI/@FieldURI or @FieldIndex")),
            },
            "ExtendedFieldURI" => ExtendedFieldUri::parse(node).map(PropertyPath::Extended),
            _ => return None,
        })
    }

    pub fn parse_all(node: Node<'_, '_>) -> Result<Vec<PropertyPath>, WireError> {
        node.elements().filter_map(PropertyPath::parse).collect()
    }
}

/// `t:ItemShape` / `t:FolderShape`: a base shape and additional properties.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Shape {
    /// `IdOnly`, `Default`, `AllProperties`.
    pub base_shape: String,
    /// `BodyType`: `Best`, `HTML`, `Text`.
    pub body_type: Option<String>,
    pub additional_properties: Vec<PropertyPath>,
}

impl Shape {
    pub fn id_only() -> Self {
        Shape { base_shape: "IdOnly".into(), body_type: None, additional_properties: vec![] }
    }

    pub fn write(&self, w: &mut XmlWriter, element: &str) {
        w.open(element, &[]);
        w.leaf("t:BaseShape", &self.base_shape);
        w.leaf_opt("t:BodyType", self.body_type.as_deref());
        if !self.additional_properties.is_empty() {
            w.open("t:AdditionalProperties", &[]);
            for p in &self.additional_properties {
                p.write(w);
            }
            w.close("t:AdditionalProperties");
        }
        w.close(element);
    }

    pub fn parse(node: Node<'_, '_>) -> Result<Self, WireError> {
        Ok(Shape {
            base_shape: node
                .t_text("BaseShape")
                .map(|s| s.trim().to_string())
                .ok_or_else(|| WireError::missing(format!("{}/BaseShape", node.local())))?,
            body_type: opt_string(node, "BodyType"),
            additional_properties: node
                .t("AdditionalProperties")
                .map(PropertyPath::parse_all)
                .transpose()?
                .unwrap_or_default(),
        })
    }
}

/// `t:EffectiveRights`: what the signed-in account may do with a folder.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct EffectiveRights {
    pub create_associated: bool,
    pub create_contents: bool,
    pub create_hierarchy: bool,
    pub delete: bool,
    pub modify: bool,
    pub read: bool,
    pub view_private_items: Option<bool>,
}

impl EffectiveRights {
    /// Every right (the mailbox's owner, a delegate with FullAccess, an impersonating service).
    pub fn full() -> Self {
        EffectiveRights {
            create_associated: true,
            create_contents: true,
            create_hierarchy: true,
            delete: true,
            modify: true,
            read: true,
            view_private_items: Some(true),
        }
    }

    fn write(&self, w: &mut XmlWriter) {
        w.open("t:EffectiveRights", &[]);
        for (name, v) in [
            ("t:CreateAssociated", self.create_associated),
            ("t:CreateContents", self.create_contents),
            ("t:CreateHierarchy", self.create_hierarchy),
            ("t:Delete", self.delete),
            ("t:Modify", self.modify),
            ("t:Read", self.read),
        ] {
            w.leaf(name, if v { "true" } else { "false" });
        }
        w.bool_opt("t:ViewPrivateItems", self.view_private_items);
        w.close("t:EffectiveRights");
    }

    fn parse(node: Node<'_, '_>) -> Result<Self, WireError> {
        let b = |name: &str| opt_bool(node, name).map(|v| v.unwrap_or(false));
        Ok(EffectiveRights {
            create_associated: b("CreateAssociated")?,
            create_contents: b("CreateContents")?,
            create_hierarchy: b("CreateHierarchy")?,
            delete: b("Delete")?,
            modify: b("Modify")?,
            read: b("Read")?,
            view_private_items: opt_bool(node, "ViewPrivateItems")?,
        })
    }
}

/// One entry of a folder's `t:PermissionSet`: who (a distinguished user `Default` or
/// `Anonymous`, or an address) and the level (`t:PermissionLevel`, or
/// `t:CalendarPermissionLevel` on calendar folders: `FreeBusyTimeOnly`, `Reviewer`, …).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Permission {
    pub distinguished_user: Option<String>,
    pub primary_smtp_address: Option<String>,
    pub level: String,
}

/// `t:Folder` / `t:CalendarFolder` in answers.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Folder {
    /// `Folder`, `CalendarFolder`, `ContactsFolder`, `SearchFolder`, `TasksFolder`.
    pub element: String,
    pub folder_id: Option<ItemId>,
    pub parent_folder_id: Option<ItemId>,
    pub folder_class: Option<String>,
    pub display_name: Option<String>,
    pub total_count: Option<i32>,
    pub child_folder_count: Option<i32>,
    pub effective_rights: Option<EffectiveRights>,
    /// `calendar`, `root`, `msgfolderroot`, … (Exchange 2013 and later name it).
    pub distinguished_folder_id: Option<String>,
    /// `t:PermissionSet` (`t:CalendarPermissionSet`'s shape on calendar folders).
    pub permissions: Option<Vec<Permission>>,
    /// `t:UnreadCount` (not on calendar folders).
    pub unread_count: Option<i32>,
}

impl Folder {
    fn is_calendar(&self) -> bool {
        self.element == "CalendarFolder"
    }

    fn write_permissions(&self, w: &mut XmlWriter, list: &[Permission]) {
        let (array, entry, level) = if self.is_calendar() {
            ("t:CalendarPermissions", "t:CalendarPermission", "t:CalendarPermissionLevel")
        } else {
            ("t:Permissions", "t:Permission", "t:PermissionLevel")
        };
        w.open("t:PermissionSet", &[]).open(array, &[]);
        for p in list {
            w.open(entry, &[]).open("t:UserId", &[]);
            w.leaf_opt("t:PrimarySmtpAddress", p.primary_smtp_address.as_deref());
            w.leaf_opt("t:DistinguishedUser", p.distinguished_user.as_deref());
            w.close("t:UserId");
            w.leaf(level, &p.level);
            w.close(entry);
        }
        w.close(array).close("t:PermissionSet");
    }

    pub fn write(&self, w: &mut XmlWriter) {
        let element = format!("t:{}", if self.element.is_empty() { "Folder" } else { &self.element });
        w.open(&element, &[]);
        if let Some(id) = &self.folder_id {
            id.write(w, "t:FolderId");
        }
        if let Some(id) = &self.parent_folder_id {
            id.write(w, "t:ParentFolderId");
        }
        w.leaf_opt("t:FolderClass", self.folder_class.as_deref());
        w.leaf_opt("t:DisplayName", self.display_name.as_deref());
        w.num_opt("t:TotalCount", self.total_count);
        w.num_opt("t:ChildFolderCount", self.child_folder_count);
        if let Some(r) = &self.effective_rights {
            r.write(w);
        }
        w.leaf_opt("t:DistinguishedFolderId", self.distinguished_folder_id.as_deref());
        if let Some(list) = &self.permissions {
            self.write_permissions(w, list);
        }
        if !self.is_calendar() {
            w.num_opt("t:UnreadCount", self.unread_count);
        }
        w.close(&element);
    }

    pub fn parse(node: Node<'_, '_>) -> Result<Self, WireError> {
        let num = |name: &str| -> Result<Option<i32>, WireError> {
            node.t_text(name).map(|s| parse_num(name, s)).transpose()
        };
        let permissions = node.t("PermissionSet").map(|set| {
            set.descendants()
                .filter(|p| matches!(p.local(), "Permission" | "CalendarPermission"))
                .map(|p| {
                    let user = p.t("UserId");
                    Permission {
                        distinguished_user: user.and_then(|u| opt_string(u, "DistinguishedUser")),
                        primary_smtp_address: user.and_then(|u| opt_string(u, "PrimarySmtpAddress")),
                        level: opt_string(p, "CalendarPermissionLevel")
                            .or_else(|| opt_string(p, "PermissionLevel"))
                            .unwrap_or_default(),
                    }
                })
                .collect()
        });
        Ok(Folder {
            element: node.local().to_string(),
            folder_id: node.t("FolderId").map(ItemId::parse).transpose()?,
            parent_folder_id: node.t("ParentFolderId").map(ItemId::parse).transpose()?,
            folder_class: opt_string(node, "FolderClass"),
            display_name: opt_string(node, "DisplayName"),
            total_count: num("TotalCount")?,
            child_folder_count: num("ChildFolderCount")?,
            effective_rights: node.t("EffectiveRights").map(EffectiveRights::parse).transpose()?,
            distinguished_folder_id: opt_string(node, "DistinguishedFolderId"),
            permissions,
            unread_count: num("UnreadCount")?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::super::xml::{parse, Limits};
    use super::*;

    fn round_trip(item: &Item) -> Item {
        let mut w = XmlWriter::new();
        w.raw(&format!(r#"<r xmlns:t="{NS_TYPES}">"#));
        item.write(&mut w);
        w.raw("</r>");
        let xml = w.finish();
        let doc = parse(&xml, Limits::default()).unwrap();
        let first = doc.root_element().elements().next().unwrap();
        Item::parse(first).unwrap()
    }

    #[test]
    fn a_full_calendar_item_round_trips() {
        let item = Item {
            item_id: Some(ItemId::new("AAMkAD=", Some("DwAAABYA".into()))),
            subject: Some("Class <1> & review".into()),
            sensitivity: Some("Private".into()),
            body: Some(Body { body_type: "Text".into(), text: "Line 1\nLine 2".into() }),
            categories: Some(vec!["Training".into()]),
            extended_properties: vec![ExtendedProperty {
                uri: ExtendedFieldUri {
                    property_set_id: Some("00020329-0000-0000-C000-000000000046".into()),
                    property_name: Some("calbridgeProvenance".into()),
                    property_type: "String".into(),
                    ..Default::default()
                },
                value: Some("calbridge:acme:1".into()),
                values: None,
            }],
            uid: Some("040000008200E00074C5B7101A82E008".into()),
            start: Some("2026-12-07T09:00:00Z".into()),
            end: Some("2026-12-07T10:00:00Z".into()),
            is_all_day_event: Some(false),
            legacy_free_busy_status: Some("Busy".into()),
            location: Some("Room 2.14".into()),
            calendar_item_type: Some("RecurringMaster".into()),
            organizer: Some(EmailAddress::smtp(Some("Ann Lee"), "ann@contoso.com")),
            required_attendees: Some(vec![Attendee {
                mailbox: EmailAddress::smtp(Some("Bob"), "bob@contoso.com"),
                response_type: Some("Accept".into()),
                last_response_time: None,
            }]),
            resources: Some(vec![Attendee {
                mailbox: EmailAddress::smtp(None, "room-2.14@contoso.com"),
                response_type: Some("Decline".into()),
                last_response_time: None,
            }]),
            recurrence: Some(Recurrence {
                pattern: RecurrencePattern::Weekly {
                    interval: 1,
                    days_of_week: "Monday Wednesday".into(),
                    first_day_of_week: Some("Monday".into()),
                },
                range: RecurrenceRange::Numbered { start_date: "2026-12-07".into(), number_of_occurrences: 10 },
            }),
            modified_occurrences: Some(vec![OccurrenceInfo {
                item_id: ItemId::new("occ", Some("ck".into())),
                start: "2026-12-09T10:00:00Z".into(),
                end: "2026-12-09T11:00:00Z".into(),
                original_start: "2026-12-09T09:00:00Z".into(),
            }]),
            deleted_occurrences: Some(vec!["2026-12-14T09:00:00Z".into()]),
            start_time_zone: Some(TimeZoneRef::id("W. Europe Standard Time")),
            ..Item::calendar()
        };
        assert_eq!(round_trip(&item), item);
    }

    #[test]
    fn field_uris_copy_clear_and_project() {
        let mut a = Item::calendar();
        let b = Item { subject: Some("New".into()), location: Some("Room".into()), ..Item::calendar() };
        assert!(a.set_field("item:Subject", &b));
        assert!(!a.set_field("item:NoSuchField", &b));
        assert_eq!(a.subject.as_deref(), Some("New"));
        assert!(a.has_field("item:Subject") && !a.has_field("calendar:Location"));
        assert!(a.clear_field("item:Subject"));
        assert_eq!(a.subject, None);
        let p = b.project(&["calendar:Location"], false);
        assert_eq!((p.subject, p.location.as_deref()), (None, Some("Room")));
    }

    #[test]
    fn a_folder_with_rights_and_permissions_round_trips() {
        let calendar = Folder {
            element: "CalendarFolder".into(),
            folder_id: Some(ItemId::new("AAMkAGI=", Some("AgAAAA==".into()))),
            parent_folder_id: Some(ItemId::new("AAMkAGJ=", None)),
            folder_class: Some("IPF.Appointment".into()),
            display_name: Some("Calendar".into()),
            total_count: Some(3),
            child_folder_count: Some(0),
            effective_rights: Some(EffectiveRights::full()),
            distinguished_folder_id: Some("calendar".into()),
            permissions: Some(vec![Permission {
                distinguished_user: Some("Default".into()),
                primary_smtp_address: None,
                level: "FreeBusyTimeOnly".into(),
            }]),
            unread_count: None,
        };
        let root = Folder { element: "Folder".into(), unread_count: Some(0), ..calendar.clone() };
        for f in [calendar, root] {
            let mut w = XmlWriter::new();
            w.raw(&format!(r#"<r xmlns:t="{NS_TYPES}">"#));
            f.write(&mut w);
            w.raw("</r>");
            let xml = w.finish();
            let doc = parse(&xml, Limits::default()).unwrap();
            assert_eq!(Folder::parse(doc.root_element().elements().next().unwrap()).unwrap(), f, "{xml}");
        }
    }
}
