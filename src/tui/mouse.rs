//! The mouse (off with `--no-mouse`): a click selects a row or focuses a pane, the wheel
//! scrolls what is under it.

use ratatui::crossterm::event::{MouseButton, MouseEvent, MouseEventKind};
use ratatui::layout::{Position, Rect};

use super::app::{run_command, App, Effect, Focus, Screen, View};
use super::keymap::Command;

/// Rows one wheel notch moves.
const WHEEL_ROWS: usize = 3;

fn inside(area: Option<Rect>, mouse: &MouseEvent) -> bool {
    area.is_some_and(|a| a.contains(Position::new(mouse.column, mouse.row)))
}

pub fn on_mouse(app: &mut App, mouse: MouseEvent) -> Vec<Effect> {
    if app.overlay.is_some() || app.command_line.is_some() {
        return Vec::new();
    }
    let areas = super::ui::main_areas(app);
    let on_main = app.screen == Screen::Main && app.view == View::Dag;
    match mouse.kind {
        MouseEventKind::ScrollUp | MouseEventKind::ScrollDown => {
            let command = if mouse.kind == MouseEventKind::ScrollUp {
                Command::Up
            } else {
                Command::Down
            };
            if on_main {
                // The wheel scrolls the pane under the pointer.
                let focus = app.focus;
                app.focus = if inside(areas.log, &mouse) {
                    Focus::Log
                } else {
                    Focus::Dag
                };
                for _ in 0..WHEEL_ROWS {
                    run_command(app, command, None);
                }
                app.focus = focus;
            } else {
                for _ in 0..WHEEL_ROWS {
                    run_command(app, command, None);
                }
            }
        }
        MouseEventKind::Down(MouseButton::Left) if on_main => {
            if let Some(dag) = areas.dag.filter(|_| inside(areas.dag, &mouse)) {
                app.focus = Focus::Dag;
                let line = usize::from(mouse.row.saturating_sub(dag.y + 1));
                if mouse.row > dag.y && line < areas.dag_rows() {
                    let row = app.offset + line;
                    if row < app.rows.len() {
                        let clicked = app.rows[row];
                        if app.selected == Some(clicked) {
                            run_command(app, Command::Open, None);
                        } else {
                            app.selected = Some(clicked);
                            app.rebuild_rows();
                            app.log.top = None;
                        }
                    }
                }
            } else if inside(areas.log, &mouse) {
                app.focus = Focus::Log;
            }
        }
        _ => {}
    }
    Vec::new()
}
