package web

import (
	"fmt"
	"math"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// palettes reads the colour variables of style.css: the light ones from the
// first :root block, the dark ones from the prefers-color-scheme: dark block.
func palettes(t *testing.T) map[string]map[string]string {
	t.Helper()
	b, err := staticFS.ReadFile("static/style.css")
	if err != nil {
		t.Fatal(err)
	}
	css := string(b)
	dark := strings.Index(css, "@media (prefers-color-scheme: dark)")
	if dark < 0 {
		t.Fatal("style.css has no dark scheme")
	}
	decl := regexp.MustCompile(`(--[a-z-]+):\s*(#[0-9a-fA-F]{6})\s*;`)
	read := func(block string) map[string]string {
		m := map[string]string{}
		for _, d := range decl.FindAllStringSubmatch(block, -1) {
			m[d[1]] = d[2]
		}
		return m
	}
	rest := css[dark:]
	return map[string]map[string]string{
		"light": read(css[:dark]),
		"dark":  read(rest[:strings.Index(rest, "\n}\n")]),
	}
}

// luminance is the WCAG 2 relative luminance of #rrggbb.
func luminance(hex string) float64 {
	var c [3]float64
	for i := range c {
		v, _ := strconv.ParseUint(hex[1+2*i:3+2*i], 16, 8)
		s := float64(v) / 255
		if s <= 0.04045 {
			c[i] = s / 12.92
		} else {
			c[i] = math.Pow((s+0.055)/1.055, 2.4)
		}
	}
	return 0.2126*c[0] + 0.7152*c[1] + 0.0722*c[2]
}

func contrast(a, b string) float64 {
	la, lb := luminance(a), luminance(b)
	return (math.Max(la, lb) + 0.05) / (math.Min(la, lb) + 0.05)
}

func TestColoursMeetWCAGAA(t *testing.T) {
	pairs := []struct {
		what, fg, bg string
		min          float64
	}{
		{"body text on the card", "--text", "--card", 4.5},
		{"muted text on the card", "--muted", "--card", 4.5},
		{"the brand line on the page", "--muted", "--bg", 4.5},
		{"button label on the primary button", "--accent-text", "--accent", 4.5},
		{"the unverified-client warning text", "--text", "--warn-bg", 4.5},
		{"the client ID inside the warning", "--muted", "--warn-bg", 4.5},
		{"an alert", "--alert-text", "--alert-bg", 4.5},
		{"code on its background", "--text", "--code-bg", 4.5},
		{"muted code on its background", "--muted", "--code-bg", 4.5},
		{"the focus ring against the card", "--focus", "--card", 3},
		{"the focus ring against the page", "--focus", "--bg", 3},
		{"input borders against the card", "--muted", "--card", 3},
		{"the warning's edge against its background", "--warn-border", "--warn-bg", 3},
	}
	for scheme, p := range palettes(t) {
		for _, pair := range pairs {
			t.Run(fmt.Sprintf("%s scheme: %s reaches %.1f:1", scheme, pair.what, pair.min), func(t *testing.T) {
				fg, bg := p[pair.fg], p[pair.bg]
				if fg == "" || bg == "" {
					t.Fatalf("%s or %s is not defined as #rrggbb in the %s scheme", pair.fg, pair.bg, scheme)
				}
				if got := contrast(fg, bg); got < pair.min {
					t.Errorf("contrast of %s %s on %s %s = %.2f:1; want at least %.1f:1", pair.fg, fg, pair.bg, bg, got, pair.min)
				}
			})
		}
	}
}

func TestContrastFormula(t *testing.T) {
	for _, tt := range []struct {
		a, b string
		want float64
	}{
		{"#000000", "#ffffff", 21},
		{"#ffffff", "#ffffff", 1},
		{"#767676", "#ffffff", 4.54}, // the lightest grey that passes AA on white
	} {
		t.Run(fmt.Sprintf("%s on %s is %.2f:1", tt.a, tt.b, tt.want), func(t *testing.T) {
			if got := contrast(tt.a, tt.b); math.Abs(got-tt.want) > 0.01 {
				t.Errorf("contrast(%s, %s) = %.3f; want %.2f", tt.a, tt.b, got, tt.want)
			}
		})
	}
}
