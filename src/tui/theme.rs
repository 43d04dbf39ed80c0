//! Colours for the interface, chosen for what the terminal can show: true colour
//! when it says so (`COLORTERM`), 256 colours when `TERM` says so, the 16 basic
//! colours otherwise, and none at all with `NO_COLOR` (<https://no-color.org>).
//!
//! Every colour the interface uses comes from here; views never name colours.

use ratatui::style::{Color, Modifier, Style};

/// How many colours the terminal shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ColorDepth {
    /// No colour (NO_COLOR): attributes only.
    None,
    /// The 16 ANSI colours.
    Basic,
    /// The xterm 256-colour palette.
    Indexed,
    /// 24-bit colour.
    True,
}

impl ColorDepth {
    /// From the environment: `NO_COLOR`, `COLORTERM`, `TERM`.
    pub fn detect() -> ColorDepth {
        let var = |k: &str| std::env::var(k).unwrap_or_default();
        Self::from_env(
            std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty()),
            &var("COLORTERM"),
            &var("TERM"),
        )
    }

    /// The decision, from the variables' values.
    pub fn from_env(no_color: bool, colorterm: &str, term: &str) -> ColorDepth {
        if no_color || term == "dumb" {
            ColorDepth::None
        } else if colorterm.eq_ignore_ascii_case("truecolor")
            || colorterm.eq_ignore_ascii_case("24bit")
        {
            ColorDepth::True
        } else if term.contains("256color") {
            ColorDepth::Indexed
        } else {
            ColorDepth::Basic
        }
    }
}

/// The interface's styles for one colour depth.
#[derive(Debug, Clone, Copy)]
pub struct Theme {
    /// The depth these styles are for.
    pub depth: ColorDepth,
}

impl Theme {
    /// Styles for `depth`.
    pub fn new(depth: ColorDepth) -> Theme {
        Theme { depth }
    }

    fn fg(&self, c: Color) -> Style {
        match self.depth {
            ColorDepth::None => Style::default(),
            _ => Style::default().fg(c),
        }
    }

    /// Panel borders.
    pub fn border(&self) -> Style {
        self.fg(Color::DarkGray)
    }

    /// The focused panel's border.
    pub fn border_focused(&self) -> Style {
        self.fg(Color::Cyan).add_modifier(Modifier::BOLD)
    }

    /// Panel titles.
    pub fn title(&self) -> Style {
        Style::default().add_modifier(Modifier::BOLD)
    }

    /// The selected row.
    pub fn selected(&self) -> Style {
        match self.depth {
            ColorDepth::None => Style::default().add_modifier(Modifier::REVERSED),
            _ => Style::default()
                .bg(Color::DarkGray)
                .fg(Color::White)
                .add_modifier(Modifier::BOLD),
        }
    }

    /// Table headers and labels.
    pub fn header(&self) -> Style {
        self.fg(Color::Yellow).add_modifier(Modifier::BOLD)
    }

    /// Secondary text.
    pub fn dim(&self) -> Style {
        match self.depth {
            ColorDepth::None => Style::default().add_modifier(Modifier::DIM),
            _ => Style::default().fg(Color::DarkGray),
        }
    }

    /// A key name.
    pub fn key(&self) -> Style {
        self.fg(Color::Cyan).add_modifier(Modifier::BOLD)
    }

    /// Something playing.
    pub fn playing(&self) -> Style {
        self.fg(Color::Green).add_modifier(Modifier::BOLD)
    }

    /// A warning or an error.
    pub fn warn(&self) -> Style {
        self.fg(Color::Red).add_modifier(Modifier::BOLD)
    }

    /// A notice.
    pub fn notice(&self) -> Style {
        self.fg(Color::Green)
    }

    /// A level meter's colour for `db` dBFS: green, yellow near full scale, red at it.
    pub fn meter(&self, db: f32) -> Style {
        let c = if db > -1.0 {
            Color::Red
        } else if db > -9.0 {
            Color::Yellow
        } else {
            Color::Green
        };
        self.fg(c)
    }

    /// Number of distinct levels the spectrogram's colour scale has at this depth.
    pub fn heat_levels(&self) -> usize {
        match self.depth {
            ColorDepth::None => 5,
            ColorDepth::Basic => 6,
            ColorDepth::Indexed | ColorDepth::True => HEAT.len(),
        }
    }

    /// The spectrogram colour for `t` in 0..=1 (quantised to [`Theme::heat_levels`],
    /// so neighbouring cells often share a colour and redraws stay small). `None`:
    /// the background (the floor).
    pub fn heat(&self, t: f32) -> Option<Color> {
        let levels = self.heat_levels();
        let t = t.clamp(0.0, 1.0);
        let i = ((t * levels as f32) as usize).min(levels - 1);
        if i == 0 {
            return None;
        }
        Some(match self.depth {
            ColorDepth::None => return None,
            ColorDepth::Basic => [
                Color::Black,
                Color::Blue,
                Color::Magenta,
                Color::Red,
                Color::Yellow,
                Color::White,
            ][i],
            ColorDepth::Indexed => Color::Indexed(HEAT[i].0),
            ColorDepth::True => {
                let (_, r, g, b) = HEAT[i];
                Color::Rgb(r, g, b)
            }
        })
    }

    /// Characters for the spectrogram without colour: darker to brighter.
    pub fn heat_glyph(&self, t: f32) -> char {
        const SHADES: [char; 5] = [' ', '░', '▒', '▓', '█'];
        let i = ((t.clamp(0.0, 1.0) * SHADES.len() as f32) as usize).min(SHADES.len() - 1);
        SHADES[i]
    }
}

/// A perceptual heat scale ("inferno"-like): xterm index and RGB per level.
const HEAT: [(u8, u8, u8, u8); 12] = [
    (16, 0, 0, 4),
    (17, 20, 11, 52),
    (54, 58, 9, 99),
    (90, 96, 19, 110),
    (126, 133, 33, 107),
    (161, 169, 46, 94),
    (167, 203, 65, 73),
    (202, 230, 93, 47),
    (208, 247, 131, 17),
    (214, 252, 173, 18),
    (220, 245, 219, 76),
    (229, 252, 255, 164),
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn depth_follows_the_environment() {
        assert_eq!(
            ColorDepth::from_env(true, "truecolor", "xterm-256color"),
            ColorDepth::None
        );
        assert_eq!(
            ColorDepth::from_env(false, "truecolor", "xterm"),
            ColorDepth::True
        );
        assert_eq!(
            ColorDepth::from_env(false, "", "screen-256color"),
            ColorDepth::Indexed
        );
        assert_eq!(ColorDepth::from_env(false, "", "xterm"), ColorDepth::Basic);
        assert_eq!(ColorDepth::from_env(false, "", "dumb"), ColorDepth::None);
    }

    #[test]
    fn the_heat_scale_is_quantised_and_has_a_floor() {
        let t = Theme::new(ColorDepth::True);
        assert_eq!(t.heat(0.0), None);
        assert!(t.heat(1.0).is_some());
        assert_eq!(t.heat(0.50), t.heat(0.51), "neighbours share a level");
        assert_eq!(Theme::new(ColorDepth::None).heat(1.0), None);
        assert_eq!(Theme::new(ColorDepth::None).heat_glyph(1.0), '█');
    }
}
