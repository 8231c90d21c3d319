//! The printed report: per runner and action, the worker's extra figures, the targets.

use std::time::Duration;

use super::*;

/// The mean of several measurements of one phase (failures summed, the first one kept).
fn mean_phase(phases: &[&Phase]) -> Phase {
    let k = phases.len().max(1) as u32;
    Phase {
        jobs: phases.iter().map(|p| p.jobs).sum(),
        rate: phases.iter().map(|p| p.rate).sum::<f64>() / f64::from(k),
        p50: phases.iter().map(|p| p.p50).sum::<Duration>() / k,
        p99: phases.iter().map(|p| p.p99).sum::<Duration>() / k,
        failures: phases.iter().map(|p| p.failures).sum(),
        first_failure: phases.iter().find_map(|p| p.first_failure.clone()),
    }
}

/// One result per runner: the means of its rounds (peak memory: the highest).
fn combine(results: &[RunnerResult], n_actions: usize) -> Vec<RunnerResult> {
    let mut letters: Vec<char> = vec![];
    for r in results {
        if !letters.contains(&r.letter) {
            letters.push(r.letter);
        }
    }
    letters
        .into_iter()
        .map(|letter| {
            let rounds: Vec<&RunnerResult> =
                results.iter().filter(|r| r.letter == letter).collect();
            let cells = (0..n_actions)
                .map(|i| {
                    let cells: Vec<&Cell> = rounds.iter().map(|r| &r.cells[i]).collect();
                    Cell {
                        seq: mean_phase(&cells.iter().map(|c| &c.seq).collect::<Vec<_>>()),
                        at16: mean_phase(&cells.iter().map(|c| &c.at16).collect::<Vec<_>>()),
                        at64: mean_phase(&cells.iter().map(|c| &c.at64).collect::<Vec<_>>()),
                        peak_rss: cells.iter().map(|c| c.peak_rss).max().unwrap_or(0),
                        peak_pss: cells.iter().map(|c| c.peak_pss).max().unwrap_or(0),
                    }
                })
                .collect();
            RunnerResult {
                letter,
                name: rounds[0].name,
                idle: rounds[0].idle,
                ready: rounds[0].ready,
                cells,
                foreign: rounds.iter().map(|r| r.foreign).fold(0.0, f64::max),
            }
        })
        .collect()
}

pub(super) fn report(
    s: &Settings,
    actions: &[Action],
    all_rounds: &[RunnerResult],
    waiting: Option<Waiting>,
    starts: &[Duration],
    first_reply: Duration,
) {
    let ok = |c: &Cell| c.failures() == 0;
    if s.rounds > 1 {
        println!("\n== Each round (p50 at 1 client; jobs/s at 16 and 64 in flight)");
        for r in all_rounds {
            let cells: Vec<String> = r
                .cells
                .iter()
                .zip(actions)
                .map(|(c, a)| {
                    format!(
                        "{} {:.2} ms, {:.0}/{:.0}",
                        a.key,
                        ms(c.seq.p50),
                        c.at16.rate,
                        c.at64.rate
                    )
                })
                .collect();
            println!("{}: {}", r.letter, cells.join(" | "));
        }
    }
    let combined = combine(all_rounds, actions.len());
    let results = &combined[..];
    let get = |letter: char| results.iter().find(|r| r.letter == letter);
    if let (Some(a), Some(b), Some(c)) = (get('A'), get('B'), get('C')) {
        println!("\n== Targets (issue 7)");
        for (i, act) in actions.iter().enumerate() {
            let (ca, cb, cc) = (&a.cells[i], &b.cells[i], &c.cells[i]);
            if !(ok(ca) && ok(cb) && ok(cc)) {
                println!("{:<22} a runner failed: no ratios", act.label);
                continue;
            }
            let t16 = ca.at16.rate / cb.at16.rate;
            let t64 = ca.at64.rate / cb.at64.rate;
            let vs_b = ms(cb.seq.p50) / ms(ca.seq.p50);
            let vs_c = ms(ca.seq.p50) / ms(cc.seq.p50);
            println!(
                "{:<22} A/B jobs/s: {t16:.1}x at 16, {t64:.1}x at 64 (>= 15x: {}) | B p50 / A p50: {vs_b:.1}x (>= 10x: {}) | A p50 / C p50: {vs_c:.2}x (<= 2x: {})",
                act.label,
                target(t16 >= 15.0 && t64 >= 15.0),
                target(vs_b >= 10.0),
                target(vs_c <= 2.0)
            );
        }
    }
    if let Some(w) = &waiting {
        println!(
            "memory per waiting job: PSS {:.2} MiB (<= 4 MiB: {}); RSS {:.2} MiB (<= 4 MiB: {}); anonymous {:.2} MiB",
            w.pss,
            target(w.pss <= 4.0),
            w.rss,
            target(w.rss <= 4.0),
            w.anon
        );
    }

    println!("\n== Markdown\n");
    println!(
        "Runners behind the same NATS request-reply front; {} cores; {} round(s) in alternating order, figures are the means over them (peak memory: the highest); N = {} jobs per measurement for A and C, N_PROCESS = {} for B; at most {} jobs in flight in each runner.\n",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        s.rounds,
        s.n,
        s.n_process,
        s.max_in_flight
    );
    println!(
        "| runner | action | p50, 1 client | p99, 1 client | jobs/s, 16 in flight | jobs/s, 64 in flight | peak RSS | peak PSS |"
    );
    println!("| --- | --- | --- | --- | --- | --- | --- | --- |");
    for r in results {
        for (i, act) in actions.iter().enumerate() {
            let c = &r.cells[i];
            if !ok(c) {
                println!(
                    "| {}. {} | {} | failed | | | | | |",
                    r.letter, r.name, act.label
                );
                continue;
            }
            println!(
                "| {}. {} | {} | {:.2} ms | {:.2} ms | {:.0} | {:.0} | {:.0} MiB | {:.0} MiB |",
                r.letter,
                r.name,
                act.label,
                ms(c.seq.p50),
                ms(c.seq.p99),
                c.at16.rate,
                c.at64.rate,
                mib(c.peak_rss),
                mib(c.peak_pss)
            );
        }
    }
    println!();
    for r in results {
        println!(
            "- {}. {}: idle RSS {:.1} MiB, PSS {:.1} MiB; \"serving\" {:.0} ms after spawn; other processes used {:.2} cores during its measurements",
            r.letter,
            r.name,
            mib(r.idle.rss),
            mib(r.idle.pss),
            ms(r.ready),
            r.foreign
        );
    }
    if !starts.is_empty() {
        println!(
            "- A, start-up with a warm compile cache: \"serving\" after {:.0} ms, first reply after {:.0} ms (medians of {} starts)",
            ms(starts[starts.len() / 2]),
            ms(first_reply),
            starts.len()
        );
    }
    if let Some(w) = &waiting {
        println!(
            "- A, {} jobs waiting on a slow upstream: RSS {:.0} → {:.0} MiB (+{:.2} MiB a job), PSS {:.0} → {:.0} MiB (+{:.2} MiB a job), anonymous +{:.2} MiB a job",
            w.held,
            mib(w.before.rss),
            mib(w.during.rss),
            w.rss,
            mib(w.before.pss),
            mib(w.during.pss),
            w.pss,
            w.anon
        );
    }
    if let (Some(a), Some(b), Some(c)) = (get('A'), get('B'), get('C')) {
        println!(
            "\n| target | {} |",
            actions
                .iter()
                .map(|a| a.label)
                .collect::<Vec<_>>()
                .join(" | ")
        );
        println!("| --- |{}", " --- |".repeat(actions.len()));
        let row = |name: &str, f: &dyn Fn(&Cell, &Cell, &Cell) -> String| {
            let cells: Vec<String> = (0..actions.len())
                .map(|i| {
                    let (ca, cb, cc) = (&a.cells[i], &b.cells[i], &c.cells[i]);
                    if ok(ca) && ok(cb) && ok(cc) {
                        f(ca, cb, cc)
                    } else {
                        "failed".into()
                    }
                })
                .collect();
            println!("| {name} | {} |", cells.join(" | "));
        };
        row(
            "A jobs/s ÷ B, 16 / 64 in flight (≥ 15×)",
            &|ca, cb, _| {
                let (t16, t64) = (ca.at16.rate / cb.at16.rate, ca.at64.rate / cb.at64.rate);
                format!(
                    "{t16:.1}× / {t64:.1}× {}",
                    if t16 >= 15.0 && t64 >= 15.0 {
                        "✓"
                    } else {
                        "✗"
                    }
                )
            },
        );
        row("B p50 ÷ A p50 (≥ 10×)", &|ca, cb, _| {
            let r = ms(cb.seq.p50) / ms(ca.seq.p50);
            format!("{r:.1}× {}", if r >= 10.0 { "✓" } else { "✗" })
        });
        row("A p50 ÷ C p50 (≤ 2×)", &|ca, _, cc| {
            let r = ms(ca.seq.p50) / ms(cc.seq.p50);
            format!("{r:.2}× {}", if r <= 2.0 { "✓" } else { "✗" })
        });
    }
    if let Some(w) = &waiting {
        println!(
            "\nMemory per waiting job (A), target ≤ 4 MiB: PSS {:.2} MiB {}, RSS {:.2} MiB {} (RSS counts the runtime image's shared pages once per instance).",
            w.pss,
            if w.pss <= 4.0 { "✓" } else { "✗" },
            w.rss,
            if w.rss <= 4.0 { "✓" } else { "✗" }
        );
    }
}
