//! Colours written out in a declaration (`red`, `rgb(0 0 0)`, `hsl(…)`) where the guide
//! asks for Bootstrap's variables: like a hex colour, they ignore the light/dark theme.
//! Only colour properties are read, so `font-family: Red Hat` is not a colour, and a
//! function of a variable (`rgba(var(--bs-primary-rgb), .5)`, Bootstrap's own way) is
//! allowed.

/// The CSS named colours (CSS Color 4), lower case.
const NAMED: [&str; 148] = [
    "aliceblue",
    "antiquewhite",
    "aqua",
    "aquamarine",
    "azure",
    "beige",
    "bisque",
    "black",
    "blanchedalmond",
    "blue",
    "blueviolet",
    "brown",
    "burlywood",
    "cadetblue",
    "chartreuse",
    "chocolate",
    "coral",
    "cornflowerblue",
    "cornsilk",
    "crimson",
    "cyan",
    "darkblue",
    "darkcyan",
    "darkgoldenrod",
    "darkgray",
    "darkgreen",
    "darkgrey",
    "darkkhaki",
    "darkmagenta",
    "darkolivegreen",
    "darkorange",
    "darkorchid",
    "darkred",
    "darksalmon",
    "darkseagreen",
    "darkslateblue",
    "darkslategray",
    "darkslategrey",
    "darkturquoise",
    "darkviolet",
    "deeppink",
    "deepskyblue",
    "dimgray",
    "dimgrey",
    "dodgerblue",
    "firebrick",
    "floralwhite",
    "forestgreen",
    "fuchsia",
    "gainsboro",
    "ghostwhite",
    "gold",
    "goldenrod",
    "gray",
    "green",
    "greenyellow",
    "grey",
    "honeydew",
    "hotpink",
    "indianred",
    "indigo",
    "ivory",
    "khaki",
    "lavender",
    "lavenderblush",
    "lawngreen",
    "lemonchiffon",
    "lightblue",
    "lightcoral",
    "lightcyan",
    "lightgoldenrodyellow",
    "lightgray",
    "lightgreen",
    "lightgrey",
    "lightpink",
    "lightsalmon",
    "lightseagreen",
    "lightskyblue",
    "lightslategray",
    "lightslategrey",
    "lightsteelblue",
    "lightyellow",
    "lime",
    "limegreen",
    "linen",
    "magenta",
    "maroon",
    "mediumaquamarine",
    "mediumblue",
    "mediumorchid",
    "mediumpurple",
    "mediumseagreen",
    "mediumslateblue",
    "mediumspringgreen",
    "mediumturquoise",
    "mediumvioletred",
    "midnightblue",
    "mintcream",
    "mistyrose",
    "moccasin",
    "navajowhite",
    "navy",
    "oldlace",
    "olive",
    "olivedrab",
    "orange",
    "orangered",
    "orchid",
    "palegoldenrod",
    "palegreen",
    "paleturquoise",
    "palevioletred",
    "papayawhip",
    "peachpuff",
    "peru",
    "pink",
    "plum",
    "powderblue",
    "purple",
    "rebeccapurple",
    "red",
    "rosybrown",
    "royalblue",
    "saddlebrown",
    "salmon",
    "sandybrown",
    "seagreen",
    "seashell",
    "sienna",
    "silver",
    "skyblue",
    "slateblue",
    "slategray",
    "slategrey",
    "snow",
    "springgreen",
    "steelblue",
    "tan",
    "teal",
    "thistle",
    "tomato",
    "turquoise",
    "violet",
    "wheat",
    "white",
    "whitesmoke",
    "yellow",
    "yellowgreen",
];

/// Colour functions.
const FUNCTIONS: [&str; 10] = [
    "rgb", "rgba", "hsl", "hsla", "hwb", "lab", "lch", "oklab", "oklch", "color",
];

/// Whether `property` takes a colour (or a shorthand holding one).
fn colour_property(property: &str) -> bool {
    property.ends_with("color")
        || matches!(
            property,
            "background"
                | "border"
                | "border-top"
                | "border-right"
                | "border-bottom"
                | "border-left"
                | "border-block"
                | "border-inline"
                | "outline"
                | "fill"
                | "stroke"
                | "box-shadow"
                | "text-shadow"
                | "text-decoration"
                | "column-rule"
        )
}

/// The colour written out in one declaration (`color: red`), if any.
pub(super) fn written_out(decl: &str) -> Option<String> {
    let (property, value) = decl.split_once(':')?;
    let property = property.trim().to_ascii_lowercase();
    if property.starts_with("--") || !colour_property(&property) {
        return None;
    }
    let value = value.to_ascii_lowercase();
    let mut rest = value.as_str();
    while !rest.is_empty() {
        let start = rest
            .find(|c: char| c.is_ascii_alphanumeric() || c == '-')
            .unwrap_or(rest.len());
        rest = &rest[start..];
        let end = rest
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '-'))
            .unwrap_or(rest.len());
        let (word, after) = rest.split_at(end);
        if after.starts_with('(') {
            if FUNCTIONS.contains(&word) && !value.contains("var(") {
                return Some(format!("{word}(…)"));
            }
            if word == "url" {
                // A file name is not a colour (`url(tan.png)`).
                rest = after.find(')').map_or("", |i| &after[i..]);
                continue;
            }
        } else if NAMED.contains(&word) {
            return Some(word.to_owned());
        }
        rest = after;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::written_out;

    #[test]
    fn named_and_functional_colours_are_found_in_colour_properties_only() {
        assert_eq!(written_out(" color: red").as_deref(), Some("red"));
        assert_eq!(
            written_out("border: 1px solid Navy").as_deref(),
            Some("navy")
        );
        assert_eq!(
            written_out("background:rgb(0,0,0)").as_deref(),
            Some("rgb(…)")
        );
        assert_eq!(
            written_out("box-shadow: 0 0 2px hsl(0 0% 0%)").as_deref(),
            Some("hsl(…)")
        );
        for fine in [
            "color: var(--bs-body-color)",
            "background: rgba(var(--bs-primary-rgb), .5)",
            "font-family: Red Hat",
            "color: transparent",
            "color: currentColor",
            "border: 1px solid var(--bs-border-color)",
            "--hw-accent: red",
            "background: url(tan.png) no-repeat",
            "width: 10px",
        ] {
            assert_eq!(written_out(fine), None, "{fine}");
        }
    }
}
