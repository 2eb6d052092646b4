package report

import (
	"bytes"
	"fmt"
	"html"
	"io"

	"github.com/lvsdoctor/lvsdoctor/checks/result"
	"github.com/yuin/goldmark"
	"github.com/yuin/goldmark/extension"
)

// HTML is the markdown report rendered to a self-contained page, for
// attaching to a ticket where markdown does not render.
func HTML(w io.Writer, r *result.Result) error {
	var md bytes.Buffer
	if err := Markdown(&md, r); err != nil {
		return err
	}
	var body bytes.Buffer
	if err := goldmark.New(goldmark.WithExtensions(extension.GFM)).Convert(md.Bytes(), &body); err != nil {
		return err
	}
	_, err := fmt.Fprintf(w, `<!doctype html>
<html><head><meta charset="utf-8"><title>lvsdoctor: %s</title>
<style>body{font-family:sans-serif;max-width:60em;margin:2em auto;padding:0 1em}pre{background:#f4f4f4;padding:.5em;overflow-x:auto}table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:.2em .5em}</style>
</head><body>
%s</body></html>
`, html.EscapeString(string(r.Verdict)), body.String())
	return err
}
