//! `calbridge demo`: the whole product on a simulated Exchange, in one command.
//!
//! Starts the built-in Exchange simulator with the bundled sample organisation (a training
//! centre), opens an embedded SQLite store, creates a Graph connection to the simulator, links
//! every mailbox, syncs with a progress bar, books a class session (instructor, room,
//! projector) and shows the room's answer. The simulator's state is kept beside the database,
//! so running the demo again continues where it left off: the second sync is idle.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, Result};
use chrono::{Datelike, Duration, Utc, Weekday};
use clap::Args;

use calbridge_core::model::*;
use calbridge_core::policy::FreeBusyPolicy;
use calbridge_engine::SyncSummary;

use crate::app::{adapter, print_events, sync_with_progress, App};
use crate::config::Config;

#[derive(Args)]
pub struct DemoArgs {
    /// The SQLite database to use (created if missing). The simulator's state is kept beside
    /// it, in `<file>.sim.json`.
    #[arg(long, value_name = "FILE", default_value = "calbridge-demo.db")]
    db: PathBuf,
    /// Start from scratch: delete the database and the simulator state first.
    #[arg(long)]
    fresh: bool,
    /// The protocol calbridge speaks to the simulator: `graph` (Exchange Online's Microsoft
    /// Graph) or `ews` (Exchange Server's EWS, NTLM-signed in with impersonation).
    #[arg(long, value_enum, default_value_t = Protocol::Graph)]
    protocol: Protocol,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Protocol {
    Graph,
    Ews,
}

const CONNECTION: &str = "contoso-demo";
const SITE: &str = "Contoso Learning Centre";
const CLASS_ID: &str = "demo-class-session-0001";

pub async fn run(args: DemoArgs) -> Result<()> {
    let started = Instant::now();
    let db = if args.db.is_absolute() { args.db.clone() } else { std::env::current_dir()?.join(&args.db) };
    let state_file = PathBuf::from(format!("{}.sim.json", db.display()));
    if args.fresh {
        for p in [
            db.clone(),
            state_file.clone(),
            PathBuf::from(format!("{}-wal", db.display())),
            PathBuf::from(format!("{}-shm", db.display())),
        ] {
            if p.exists() {
                std::fs::remove_file(&p).with_context(|| format!("cannot delete {}", p.display()))?;
            }
        }
    }
    if db.exists() && !state_file.exists() {
        // The store was synced with a simulator whose state is gone: start both afresh
        // rather than reconcile a store against an unrelated Exchange.
        println!("note: {} has no simulator state beside it ({}); starting over\n", db.display(), state_file.display());
        for p in
            [db.clone(), PathBuf::from(format!("{}-wal", db.display())), PathBuf::from(format!("{}-shm", db.display()))]
        {
            if p.exists() {
                std::fs::remove_file(&p).with_context(|| format!("cannot delete {}", p.display()))?;
            }
        }
    }
    let resumed = db.exists() && state_file.exists();

    println!(
        "calbridge demo: a simulated {}, an embedded SQLite store, one command\n",
        match args.protocol {
            Protocol::Graph => "Exchange Online (Microsoft Graph)",
            Protocol::Ews => "Exchange Server (EWS)",
        }
    );
    let sim = if resumed {
        calbridge_sim::Simulator::load_state(&state_file).with_context(|| {
            format!("cannot load the simulator state {}; run with --fresh to start over", state_file.display())
        })?
    } else {
        calbridge_sim::Simulator::new(&calbridge_sim::Scenario::demo())?
    };
    let running = sim.start().await.context("cannot start the simulator on 127.0.0.1")?;
    let creds = sim.credentials();
    println!(
        "1. Exchange simulator listening on {}{}",
        running.base_url,
        if resumed { " (state from the previous run)" } else { "" }
    );

    let organizer = sim.organizer().unwrap_or_else(|| format!("scheduler@{}", creds.tenant_domain));
    let connection = match args.protocol {
        Protocol::Graph => format!(
            "kind = \"graph\"\ntenant_id = \"{}\"\nclient_id = \"{}\"\nclient_secret = \"{}\"\nauthority_url = \"{}\"\ngraph_url = \"{}\"\n",
            creds.tenant_domain,
            creds.client_id,
            creds.client_secret,
            running.authority_url(),
            running.graph_url()
        ),
        Protocol::Ews => {
            let account = sim
                .ews_accounts()
                .into_iter()
                .find(|a| a.impersonation)
                .context("the simulator's scenario has no EWS service account with impersonation")?;
            format!(
                "kind = \"ews\"\nurl = \"{}\"\nauth = \"ntlm\"\nusername = {:?}\npassword = {:?}\nimpersonation = true\n",
                running.ews_url(),
                account.username,
                account.password
            )
        }
    };
    let text = format!(
        r#"installation_id = "demo"
store = "sqlite://{db}"
[[connections]]
name = "{CONNECTION}"
{connection}default_organizer = "{organizer}"
max_threads = 8
[[sites]]
name = "{SITE}"
connection = "{CONNECTION}"
"#,
        db = db.display(),
        organizer = organizer,
    );
    let mut text = text;
    let directory = sim.mailboxes();
    for m in &directory {
        text.push_str(&format!(
            "[[calendars]]\nemail = \"{}\"\nkind = \"{}\"\nname = \"{}\"\nsite = \"{SITE}\"\n",
            m.email,
            m.kind,
            m.name.replace('"', "'")
        ));
    }
    let config = Config::parse(&text, &|_| None)?;
    let app = App::open(config).await?;
    let links = app.apply_links().await?;
    let (conn, cc) = links.into_iter().next().expect("one connection");
    let calendars = app.store.calendars(Some(conn.id)).await?;
    let count = |k: CalendarKind| calendars.iter().filter(|c| c.kind == k).count();
    println!(
        "2. Store {} — connection {CONNECTION:?} ({}), {} mailboxes linked: {} people, {} rooms, {} equipment",
        db.display(),
        match args.protocol {
            Protocol::Graph => "Microsoft Graph",
            Protocol::Ews => "EWS, NTLM with impersonation",
        },
        calendars.len(),
        count(CalendarKind::Person),
        count(CalendarKind::Room),
        count(CalendarKind::Equipment)
    );

    let ad = adapter(&cc, &app.config.installation_id)?;
    let now = Utc::now();
    let sync_started = Instant::now();
    let reports = sync_with_progress(&app.engine, &conn, ad.remote.clone(), now, "syncing mailboxes").await?;
    let first = SyncSummary::of(&reports);
    let idle = first.writes.total() == 0 && first.pulled.total() == 0 && first.pushed.total() == 0;
    println!(
        "3. Synced {} mailboxes in {:.1}s: {} events pulled, {} pushed, {} store writes{}",
        first.calendars,
        sync_started.elapsed().as_secs_f64(),
        first.pulled.created + first.pulled.updated,
        first.pushed.total(),
        first.writes.total(),
        if idle { " — idle sync: nothing changed since the last run" } else { "" }
    );
    for r in reports.iter().filter(|r| !r.ok()) {
        println!("   ! {}: {}", r.email, r.error.as_deref().or(r.paused.as_deref()).unwrap_or(""));
    }

    // 4. A class session: instructor (required), a free room and a projector (resources),
    //    organised by the connection's default organizer account.
    let mut pushed_total = first.pushed;
    let mut writes_total = first.writes;
    let organizer_email = conn.default_organizer.clone().unwrap_or(organizer);
    let organizer = app
        .store
        .calendar_by_email(&organizer_email)
        .await?
        .with_context(|| format!("the default organizer {organizer_email} is not linked"))?;
    let booking = match app.store.event(&EventId::new(CLASS_ID)).await? {
        Some(existing) => {
            println!("4. Class session {:?} was booked by an earlier run; not booking again", existing.data.subject);
            existing
        }
        None => {
            let instructors: Vec<String> = directory
                .iter()
                .filter(|m| m.job_title.as_deref() == Some("Instructor"))
                .map(|m| m.email.to_ascii_lowercase())
                .collect();
            let (data, room, projector) = plan_class_session(&app, &calendars, &instructors, now).await?;
            println!(
                "4. Booking class session {:?} on {} with {} in {} and {}",
                data.subject,
                data.start.format("%a %Y-%m-%d %H:%M UTC"),
                data.attendees[0].name,
                room.display_name,
                projector.display_name
            );
            app.store.create_local_event(organizer.id, &EventId::new(CLASS_ID), &data).await?
        }
    };
    // Push it, then read back the resources' answers (Exchange processes them after the create).
    let mut involved: Vec<Calendar> = vec![organizer.clone()];
    for a in &booking.data.attendees {
        if let Some(c) = calendars.iter().find(|c| c.email.eq_ignore_ascii_case(&a.email)) {
            involved.push(c.clone());
        }
    }
    for round in 0..2 {
        for cal in &involved {
            if round == 0 && cal.id != organizer.id {
                continue;
            }
            let r = app.engine.sync_calendar(ad.remote.as_ref(), cal, now).await;
            if let Some(e) = &r.error {
                println!("   ! {}: {e}", cal.email);
            }
            pushed_total.add(r.pushed);
            writes_total.add(r.writes);
        }
    }
    let booked = app.store.event(&EventId::new(CLASS_ID)).await?.context("the class session disappeared")?;
    for a in booked.data.attendees.iter().filter(|a| a.role == AttendeeRole::Resource) {
        let state = BookingState::from_response(a.response);
        println!("   {} answered: {}", a.name, state.as_str());
    }
    if let Some(room) = booked.data.attendees.iter().find(|a| a.role == AttendeeRole::Resource) {
        if let Some(cal) = calendars.iter().find(|c| c.email.eq_ignore_ascii_case(&room.email)) {
            let day = booked.data.start.date_naive().and_hms_opt(0, 0, 0).unwrap().and_utc();
            let evs = app.store.events_in_range(cal.id, day, day + Duration::days(1)).await?;
            print!("   ");
            print_events(cal, &evs);
        }
    }

    let total_events: usize = {
        let mut n = 0;
        for c in &calendars {
            n += app.store.events_in_range(c.id, now - Duration::days(3650), now + Duration::days(3650)).await?.len();
        }
        n
    };
    sim.save_state(&state_file)
        .with_context(|| format!("cannot save the simulator state to {}", state_file.display()))?;
    running.stop().await;

    println!("\nSummary");
    println!(
        "  mailboxes        {} ({} people, {} rooms, {} equipment)",
        calendars.len(),
        count(CalendarKind::Person),
        count(CalendarKind::Room),
        count(CalendarKind::Equipment)
    );
    println!("  events pulled    {} (store holds {total_events})", first.pulled.created + first.pulled.updated);
    println!("  events pushed    {}", pushed_total.total());
    println!(
        "  store writes     {}{}",
        writes_total.total(),
        if idle && writes_total.total() == 0 { " (idle sync: zero writes)" } else { "" }
    );
    println!(
        "  requests         {} to the simulated Exchange ({} throttled)",
        ad.requests(),
        sim.stats().throttled_429
    );
    println!("  duration         {:.1}s", started.elapsed().as_secs_f64());
    println!("  SQLite file      {}", db.display());
    println!("\nWhat to try next");
    let again = match args.protocol {
        Protocol::Graph => "calbridge demo",
        Protocol::Ews => "calbridge demo --protocol ews",
    };
    println!("  {again:<36}run again: the sync is idle, nothing is written");
    let room = booked
        .data
        .attendees
        .iter()
        .find(|a| a.role == AttendeeRole::Resource)
        .map(|a| a.email.as_str())
        .unwrap_or("room201@contoso.example");
    println!(
        "  CALBRIDGE_STORE=sqlite://{} calbridge events --calendar {room} --from {}",
        db.display(),
        booked.data.start.format("%Y-%m-%d")
    );
    println!("                                      read the room's calendar from the store");
    println!("  calbridge sim                       the simulator alone, with its URLs and credentials");
    println!("  calbridge demo --fresh              start over");
    Ok(())
}

/// Picks the next weekday 10:00-12:00 UTC at least two days ahead, an instructor, and a room
/// and a projector that are free then according to the store (merged free/busy).
async fn plan_class_session(
    app: &App,
    calendars: &[Calendar],
    instructors: &[String],
    now: chrono::DateTime<Utc>,
) -> Result<(EventData, Calendar, Calendar)> {
    let policy = FreeBusyPolicy::default();
    let mut day = now.date_naive() + Duration::days(2);
    while matches!(day.weekday(), Weekday::Sat | Weekday::Sun) {
        day += Duration::days(1);
    }
    for _ in 0..30 {
        let start = day.and_hms_opt(10, 0, 0).unwrap().and_utc();
        let end = start + Duration::hours(2);
        let free = |kind: CalendarKind| {
            let cands: Vec<&Calendar> = calendars.iter().filter(|c| c.kind == kind).collect();
            async move {
                for c in cands {
                    let evs = app.store.events_in_range(c.id, start, end).await?;
                    if policy.busy_intervals(evs.iter().map(|e| &e.data), start, end).is_empty() {
                        return Ok::<_, anyhow::Error>(Some(c.clone()));
                    }
                }
                Ok(None)
            }
        };
        let room = free(CalendarKind::Room).await?;
        let projector = free(CalendarKind::Equipment).await?;
        let instructor = calendars.iter().find(|c| c.kind == CalendarKind::Person && instructors.contains(&c.email));
        if let (Some(room), Some(projector), Some(instructor)) = (room, projector, instructor) {
            let mut data = EventData::new("Excel for Finance — Level 2 (class session)", start, end);
            data.body = "Class session booked through calbridge. Bring your laptop.".into();
            data.location = room.display_name.clone();
            data.attendees = vec![
                Attendee {
                    email: instructor.email.clone(),
                    name: instructor.display_name.clone(),
                    role: AttendeeRole::Required,
                    response: ResponseStatus::None,
                },
                Attendee {
                    email: room.email.clone(),
                    name: room.display_name.clone(),
                    role: AttendeeRole::Resource,
                    response: ResponseStatus::None,
                },
                Attendee {
                    email: projector.email.clone(),
                    name: projector.display_name.clone(),
                    role: AttendeeRole::Resource,
                    response: ResponseStatus::None,
                },
            ];
            return Ok((data, room, projector));
        }
        day += Duration::days(1);
    }
    anyhow::bail!("no free room and projector found in the next 30 days")
}
