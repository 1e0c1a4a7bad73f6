//! The `[generate]` block: a deterministic organisation (people, rooms, equipment, personal
//! events and room meetings) from a seed and an anchor date. Same scenario + same anchor date
//! = same mailboxes, events and ids.

use chrono::{Datelike, Duration, NaiveDate, NaiveTime, Weekday};
use chrono_tz::Tz;

use crate::ids::Rng;
use crate::scenario::{AttendeeSpec, EventSpec, GenerateSpec, MailboxKind, MailboxSpec, RecurrenceSpec};

const FIRST: &[&str] = &[
    "Amelia", "Oliver", "Isla", "George", "Ava", "Noah", "Mia", "Arthur", "Ivy", "Leo", "Grace", "Oscar", "Freya",
    "Harry", "Lily", "Jack", "Emily", "Theo", "Sophie", "Henry", "Chloe", "Samuel", "Hannah", "Daniel", "Zara",
    "Priya", "Mateo", "Yusuf", "Aisha", "Wei", "Kenji",
];
const LAST: &[&str] = &[
    "Smith", "Jones", "Taylor", "Brown", "Williams", "Wilson", "Johnson", "Davies", "Patel", "Robinson", "Wright",
    "Thompson", "Evans", "Walker", "White", "Roberts", "Green", "Hall", "Khan", "Lewis", "Clarke", "Jackson", "Wood",
    "Harris", "Edwards", "Turner", "Martin",
];
const EQUIPMENT: &[&str] =
    &["Projector", "Video-conference cart", "Laptop trolley", "Document camera", "Portable speaker"];
const PERSONAL: &[&str] = &[
    "Course preparation",
    "1:1 with team lead",
    "Team sync",
    "Focus time",
    "Marking assignments",
    "Curriculum review",
    "Lunch with a colleague",
    "Dentist",
    "Budget review",
    "Supplier call",
    "Learner feedback review",
    "Staff meeting",
    "Training needs analysis",
    "Doctor's appointment",
    "Quality audit prep",
    "Coffee chat",
    "Exam board",
    "Inbox zero",
    "Room walkthrough",
];
const COURSES: &[&str] = &[
    "Excel Advanced",
    "First Aid at Work",
    "Project Management Fundamentals",
    "Python for Analysts",
    "Leadership Essentials",
    "GDPR Awareness",
    "Presentation Skills",
    "Agile Foundations",
    "Customer Service Excellence",
    "Health and Safety Level 2",
    "Power BI Introduction",
    "Time Management",
    "Negotiation Skills",
    "Spanish for Beginners",
    "Accounting Basics",
];

fn slug(s: &str) -> String {
    s.chars()
        .filter_map(|c| match c {
            'a'..='z' | '0'..='9' => Some(c),
            'A'..='Z' => Some(c.to_ascii_lowercase()),
            ' ' | '-' | '.' => Some('.'),
            _ => None,
        })
        .collect()
}

/// Extra mailboxes asked for by `people`, `rooms`, `equipment`.
pub fn mailboxes(g: &GenerateSpec, domain: &str, existing: &[MailboxSpec]) -> Vec<MailboxSpec> {
    let mut rng = Rng::new(g.seed.wrapping_add(1));
    let mut out: Vec<MailboxSpec> = Vec::new();
    let taken = |email: &str, out: &[MailboxSpec]| {
        existing.iter().chain(out.iter()).any(|m| m.email.eq_ignore_ascii_case(email))
    };
    let base = |email: String, name: String, kind: MailboxKind| MailboxSpec {
        email,
        name,
        kind,
        job_title: None,
        office_location: None,
        time_zone: None,
        capacity: None,
        auto_accept: true,
        allow_conflicts: false,
        booking_window_days: 180,
        max_duration_minutes: 1440,
        add_organizer_to_subject: false,
        delete_subject: false,
    };
    let mut n = 0;
    while out.iter().filter(|m| m.kind == MailboxKind::Person).count() < g.people {
        let first = rng.pick(FIRST);
        let last = rng.pick(LAST);
        let mut email = format!("{}.{}@{domain}", slug(first), slug(last));
        if taken(&email, &out) {
            n += 1;
            email = format!("{}.{}{n}@{domain}", slug(first), slug(last));
        }
        let mut m = base(email, format!("{first} {last}"), MailboxKind::Person);
        m.job_title = Some(if rng.chance(0.6) { "Instructor" } else { "Coordinator" }.into());
        out.push(m);
    }
    for i in 0..g.rooms {
        let cap = [6, 8, 12, 16, 20, 24, 30][rng.below(7) as usize];
        let email = format!("room{}@{domain}", 100 + i);
        if taken(&email, &out) {
            continue;
        }
        let mut m = base(email, format!("Room {} ({cap} seats)", 100 + i), MailboxKind::Room);
        m.capacity = Some(cap);
        out.push(m);
    }
    for i in 0..g.equipment {
        let email = format!("equipment{}@{domain}", 100 + i);
        if taken(&email, &out) {
            continue;
        }
        let name = format!("{} {}", EQUIPMENT[i % EQUIPMENT.len()], i + 1);
        out.push(base(email, name, MailboxKind::Equipment));
    }
    out
}

fn workday(anchor: NaiveDate, offset: i64) -> NaiveDate {
    let d = anchor + Duration::days(offset);
    match d.weekday() {
        Weekday::Sat => d + Duration::days(2),
        Weekday::Sun => d + Duration::days(1),
        _ => d,
    }
}

fn instant(tz: Tz, date: NaiveDate, minutes: i64) -> chrono::DateTime<chrono::FixedOffset> {
    let local = date.and_time(NaiveTime::MIN) + Duration::minutes(minutes);
    crate::tz::local_to_utc(tz, local).fixed_offset()
}

fn weekly(date: NaiveDate, rng: &mut Rng) -> RecurrenceSpec {
    RecurrenceSpec {
        pattern: "weekly".into(),
        interval: 1,
        days_of_week: vec![crate::recurrence::weekday_name(date.weekday()).into()],
        count: Some(rng.range(6, 16) as u32),
        until: None,
    }
}

/// Events: `events_per_mailbox` personal events per person, and `meetings` room meetings.
pub fn events(
    g: &GenerateSpec,
    anchor: NaiveDate,
    zone_name: &str,
    tz: Tz,
    mailboxes: &[MailboxSpec],
) -> Vec<EventSpec> {
    let mut rng = Rng::new(g.seed);
    let organizer = g.organizer.as_deref().map(str::to_ascii_lowercase);
    let people: Vec<&MailboxSpec> = mailboxes
        .iter()
        .filter(|m| m.kind == MailboxKind::Person && Some(m.email.to_ascii_lowercase()) != organizer)
        .collect();
    let instructors: Vec<&MailboxSpec> = {
        let i: Vec<&MailboxSpec> = people
            .iter()
            .copied()
            .filter(|m| m.job_title.as_deref().is_some_and(|t| t.contains("Instructor")))
            .collect();
        if i.is_empty() {
            people.clone()
        } else {
            i
        }
    };
    let rooms: Vec<&MailboxSpec> = mailboxes.iter().filter(|m| m.kind == MailboxKind::Room).collect();
    let equipment: Vec<&MailboxSpec> = mailboxes.iter().filter(|m| m.kind == MailboxKind::Equipment).collect();
    let mut out = Vec::new();
    let event = |mailbox: &str, subject: String, start, end| EventSpec {
        mailbox: mailbox.to_string(),
        subject,
        start,
        end,
        time_zone: Some(zone_name.to_string()),
        show_as: None,
        sensitivity: None,
        location: None,
        body: None,
        is_all_day: false,
        categories: vec![],
        attendees: vec![],
        recurrence: None,
        transaction_id: None,
    };
    for person in &people {
        for _ in 0..g.events_per_mailbox {
            let date = workday(anchor, rng.range(-g.days_back, g.days_ahead));
            let roll = rng.below(100);
            if roll < 4 {
                // Annual leave: all-day, out of office.
                let days = rng.range(1, 3);
                let mut e = event(
                    &person.email,
                    "Annual leave".into(),
                    instant(tz, date, 0),
                    instant(tz, date + Duration::days(days), 0),
                );
                e.is_all_day = true;
                e.show_as = Some("oof".into());
                out.push(e);
                continue;
            }
            let start_min = rng.range(16, 33) * 30; // 08:00 .. 16:30
            let dur = [30, 30, 60, 60, 60, 90, 120][rng.below(7) as usize];
            let mut e = event(
                &person.email,
                rng.pick(PERSONAL).to_string(),
                instant(tz, date, start_min),
                instant(tz, date, start_min + dur),
            );
            e.show_as = Some(
                match roll {
                    4..=13 => "tentative",
                    14..=20 => "free",
                    21..=23 => "workingElsewhere",
                    _ => "busy",
                }
                .into(),
            );
            if rng.chance(0.08) {
                e.sensitivity = Some("private".into());
            }
            if rng.chance(0.3) {
                e.location = Some(["Staff room", "Online", "Office", "Café"][rng.below(4) as usize].into());
            }
            if rng.chance(g.recurring_fraction) {
                e.recurrence = Some(weekly(date, &mut rng));
            }
            out.push(e);
        }
    }
    for i in 0..g.meetings {
        if rooms.is_empty() || people.is_empty() {
            break;
        }
        let organizer = match &organizer {
            Some(o) => o.clone(),
            None => rng.pick(&people).email.clone(),
        };
        let date = workday(anchor, rng.range(-g.days_back, g.days_ahead));
        let (start_min, dur) = match rng.below(4) {
            0 => (9 * 60, 180),
            1 => (13 * 60 + 30, 180),
            2 => (9 * 60, 450),
            _ => (rng.range(18, 30) * 30, [60, 90, 120][rng.below(3) as usize]),
        };
        let course = rng.pick(COURSES);
        let room = rng.pick(&rooms);
        let mut e = event(
            &organizer,
            format!("{course} — session {}", i % 6 + 1),
            instant(tz, date, start_min),
            instant(tz, date, start_min + dur),
        );
        e.location = Some(room.name.clone());
        e.body = Some(format!("Course: {course}. Please arrive ten minutes early."));
        e.categories = vec!["Training".into()];
        e.attendees.push(AttendeeSpec::Full {
            address: room.email.clone(),
            name: Some(room.name.clone()),
            kind: Some("resource".into()),
        });
        if !equipment.is_empty() && rng.chance(0.3) {
            let eq = rng.pick(&equipment);
            e.attendees.push(AttendeeSpec::Full {
                address: eq.email.clone(),
                name: Some(eq.name.clone()),
                kind: Some("resource".into()),
            });
        }
        let n = rng.range(1, 2);
        for _ in 0..n {
            let p = rng.pick(&instructors);
            if !e.attendees.iter().any(|a| a.address().eq_ignore_ascii_case(&p.email))
                && !p.email.eq_ignore_ascii_case(&organizer)
            {
                e.attendees.push(AttendeeSpec::Full {
                    address: p.email.clone(),
                    name: Some(p.name.clone()),
                    kind: Some("required".into()),
                });
            }
        }
        if rng.chance(g.recurring_fraction) {
            e.recurrence = Some(weekly(date, &mut rng));
        }
        out.push(e);
    }
    out
}
