//! GetUserAvailability — <https://learn.microsoft.com/exchange/client-developer/web-service-reference/getuseravailability-operation>
//!
//! Free/busy of several mailboxes (people, rooms, equipment) over a time window. calbridge
//! asks for the `Detailed` view in UTC (a `t:TimeZone` with no bias and no daylight saving),
//! so every `StartTime`/`EndTime` in the answer is UTC wall-clock time.

use super::super::envelope::{expect_operation, Status};
use super::super::xml::{opt_bool, opt_string, parse_num, Node, NodeExt, WireError, XmlWriter, NS_MESSAGES, NS_TYPES};

/// `t:MailboxData`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MailboxData {
    pub address: String,
    /// `Organizer`, `Required`, `Optional`, `Room`, `Resource`.
    pub attendee_type: String,
    pub exclude_conflicts: Option<bool>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Request {
    /// Write a UTC `t:TimeZone` (bias 0, no daylight saving).
    pub utc_time_zone: bool,
    pub mailboxes: Vec<MailboxData>,
    pub start_time: String,
    pub end_time: String,
    pub merged_free_busy_interval_in_minutes: Option<u32>,
    /// `FreeBusy`, `Detailed`, `FreeBusyMerged`, `DetailedMerged`.
    pub requested_view: String,
}

fn write_utc_zone(w: &mut XmlWriter) {
    w.open("t:TimeZone", &[]).leaf("t:Bias", "0");
    for part in ["t:StandardTime", "t:DaylightTime"] {
        w.open(part, &[]).leaf("t:Bias", "0").leaf("t:Time", "00:00:00").leaf("t:DayOrder", "1");
        w.leaf("t:Month", "1").leaf("t:DayOfWeek", "Sunday").close(part);
    }
    w.close("t:TimeZone");
}

impl Request {
    pub fn write(&self, w: &mut XmlWriter) {
        w.open("m:GetUserAvailabilityRequest", &[]);
        if self.utc_time_zone {
            write_utc_zone(w);
        }
        w.open("m:MailboxDataArray", &[]);
        for m in &self.mailboxes {
            w.open("t:MailboxData", &[]).open("t:Email", &[]).leaf("t:Address", &m.address).close("t:Email");
            w.leaf("t:AttendeeType", &m.attendee_type).bool_opt("t:ExcludeConflicts", m.exclude_conflicts);
            w.close("t:MailboxData");
        }
        w.close("m:MailboxDataArray");
        w.open("t:FreeBusyViewOptions", &[]).open("t:TimeWindow", &[]);
        w.leaf("t:StartTime", &self.start_time).leaf("t:EndTime", &self.end_time).close("t:TimeWindow");
        w.num_opt("t:MergedFreeBusyIntervalInMinutes", self.merged_free_busy_interval_in_minutes);
        w.leaf("t:RequestedView", &self.requested_view);
        w.close("t:FreeBusyViewOptions").close("m:GetUserAvailabilityRequest");
    }

    pub fn parse(body: Node<'_, '_>) -> Result<Self, WireError> {
        expect_operation(body, "GetUserAvailabilityRequest")?;
        let array = body.m("MailboxDataArray").ok_or_else(|| WireError::missing("MailboxDataArray"))?;
        let mailboxes = array
            .children_named(NS_TYPES, "MailboxData")
            .map(|m| {
                Ok(MailboxData {
                    address: m
                        .t("Email")
                        .and_then(|e| e.t_text("Address"))
                        .map(|s| s.trim().to_string())
                        .ok_or_else(|| WireError::missing("MailboxData/Email/Address"))?,
                    attendee_type: opt_string(m, "AttendeeType").unwrap_or_else(|| "Required".into()),
                    exclude_conflicts: opt_bool(m, "ExcludeConflicts")?,
                })
            })
            .collect::<Result<Vec<_>, WireError>>()?;
        let opts = body.t("FreeBusyViewOptions").ok_or_else(|| WireError::missing("FreeBusyViewOptions"))?;
        let window = opts.t("TimeWindow").ok_or_else(|| WireError::missing("FreeBusyViewOptions/TimeWindow"))?;
        let tz = body.t("TimeZone");
        Ok(Request {
            utc_time_zone: tz.is_some_and(|z| z.t_text("Bias").map(str::trim) == Some("0")),
            mailboxes,
            start_time: opt_string(window, "StartTime").ok_or_else(|| WireError::missing("TimeWindow/StartTime"))?,
            end_time: opt_string(window, "EndTime").ok_or_else(|| WireError::missing("TimeWindow/EndTime"))?,
            merged_free_busy_interval_in_minutes: opts
                .t_text("MergedFreeBusyIntervalInMinutes")
                .map(|v| parse_num("MergedFreeBusyIntervalInMinutes", v))
                .transpose()?,
            requested_view: opt_string(opts, "RequestedView").unwrap_or_else(|| "Detailed".into()),
        })
    }
}

/// `t:CalendarEvent`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CalendarEvent {
    pub start_time: String,
    pub end_time: String,
    /// `Free`, `Tentative`, `Busy`, `OOF`, `WorkingElsewhere`, `NoData`.
    pub busy_type: String,
    pub subject: Option<String>,
    pub location: Option<String>,
}

/// One mailbox's answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FreeBusyResponse {
    pub status: Status,
    pub view_type: Option<String>,
    pub merged_free_busy: Option<String>,
    pub events: Vec<CalendarEvent>,
}

pub type Response = Vec<FreeBusyResponse>;

pub fn write_response(w: &mut XmlWriter, r: &Response) {
    w.open("m:GetUserAvailabilityResponse", &[]).open("m:FreeBusyResponseArray", &[]);
    for fb in r {
        w.open("m:FreeBusyResponse", &[]);
        fb.status.open(w, "m:ResponseMessage");
        w.close("m:ResponseMessage");
        w.open("m:FreeBusyView", &[]);
        w.leaf("t:FreeBusyViewType", fb.view_type.as_deref().unwrap_or("None"));
        w.leaf_opt("t:MergedFreeBusy", fb.merged_free_busy.as_deref());
        if fb.status.is_success() {
            w.open("t:CalendarEventArray", &[]);
            for e in &fb.events {
                w.open("t:CalendarEvent", &[]).leaf("t:StartTime", &e.start_time).leaf("t:EndTime", &e.end_time);
                w.leaf("t:BusyType", &e.busy_type);
                if e.subject.is_some() || e.location.is_some() {
                    w.open("t:CalendarEventDetails", &[]).leaf_opt("t:Subject", e.subject.as_deref());
                    w.leaf_opt("t:Location", e.location.as_deref());
                    for f in ["t:IsMeeting", "t:IsRecurring", "t:IsException", "t:IsReminderSet", "t:IsPrivate"] {
                        w.leaf(f, "false");
                    }
                    w.close("t:CalendarEventDetails");
                }
                w.close("t:CalendarEvent");
            }
            w.close("t:CalendarEventArray");
        }
        w.close("m:FreeBusyView").close("m:FreeBusyResponse");
    }
    w.close("m:FreeBusyResponseArray").close("m:GetUserAvailabilityResponse");
}

pub fn parse_response(body: Node<'_, '_>) -> Result<Response, WireError> {
    if !body.is(NS_MESSAGES, "GetUserAvailabilityResponse") {
        return Err(WireError::Unexpected {
            expected: "m:GetUserAvailabilityResponse".into(),
            found: body.local().into(),
        });
    }
    let Some(array) = body.m("FreeBusyResponseArray") else { return Ok(vec![]) };
    array
        .children_named(NS_MESSAGES, "FreeBusyResponse")
        .map(|fb| {
            let status = fb.m("ResponseMessage").map(Status::parse).transpose()?.unwrap_or_else(Status::ok);
            let view = fb.m("FreeBusyView");
            let events = view
                .and_then(|v| v.t("CalendarEventArray"))
                .map(|a| {
                    a.children_named(NS_TYPES, "CalendarEvent")
                        .map(|e| {
                            let details = e.t("CalendarEventDetails");
                            Ok(CalendarEvent {
                                start_time: opt_string(e, "StartTime")
                                    .ok_or_else(|| WireError::missing("CalendarEvent/StartTime"))?,
                                end_time: opt_string(e, "EndTime")
                                    .ok_or_else(|| WireError::missing("CalendarEvent/EndTime"))?,
                                busy_type: opt_string(e, "BusyType").unwrap_or_else(|| "Busy".into()),
                                subject: details.and_then(|d| opt_string(d, "Subject")),
                                location: details.and_then(|d| opt_string(d, "Location")),
                            })
                        })
                        .collect::<Result<Vec<_>, WireError>>()
                })
                .transpose()?
                .unwrap_or_default();
            Ok(FreeBusyResponse {
                status,
                view_type: view.and_then(|v| opt_string(v, "FreeBusyViewType")),
                merged_free_busy: view.and_then(|v| opt_string(v, "MergedFreeBusy")),
                events,
            })
        })
        .collect()
}
