// Renders an Ollama TEMPLATE the way Ollama feeds it (text/template over .System and
// .Messages, consecutive messages of one role joined by a blank line; or .Prompt for
// templates without .Messages). Reads JSON {"template", "messages", "prompt"} on stdin.
// Used by tests/test_modelfile.py to compare with the model's Jinja chat template.
package main

import (
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"text/template"
)

type Message struct {
	Role    string `json:"role"`
	Content string `json:"content"`
}

func main() {
	var in struct {
		Template string    `json:"template"`
		Messages []Message `json:"messages"`
		Prompt   string    `json:"prompt"`
	}
	if err := json.NewDecoder(os.Stdin).Decode(&in); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	tmpl, err := template.New("modelfile").Parse(in.Template)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(3)
	}
	var system []string
	var merged []*Message
	for i := range in.Messages {
		m := in.Messages[i]
		if m.Role == "system" {
			system = append(system, m.Content)
		}
		if n := len(merged); n > 0 && merged[n-1].Role == m.Role {
			merged[n-1].Content += "\n\n" + m.Content
		} else {
			merged = append(merged, &m)
		}
	}
	data := map[string]any{"System": strings.Join(system, "\n\n"), "Messages": merged,
		"Prompt": in.Prompt, "Response": ""}
	if err := tmpl.Execute(os.Stdout, data); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(4)
	}
}
