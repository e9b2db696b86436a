// Command promql-check validates Prometheus rules and PromQL with Prometheus' own parsers — what
// `promtool check rules` does, without building promtool (whose service-discovery dependencies
// take many minutes to compile). Built into ~/.cache/agentenv/tools/ by scripts/tools.ts.
//
//	promql-check rules <file>   a Prometheus rule file (groups: ...): YAML, PromQL and templates
//	promql-check exprs          PromQL expressions on stdin, one per line
//
// Prints one line per problem and exits 1 when there is any.
package main

import (
	"bufio"
	"fmt"
	"log/slog"
	"os"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/rulefmt"
	"github.com/prometheus/prometheus/promql/parser"
)

func main() {
	if len(os.Args) < 2 || (os.Args[1] == "rules" && len(os.Args) != 3) || (os.Args[1] != "rules" && os.Args[1] != "exprs") {
		fmt.Fprintln(os.Stderr, "usage: promql-check rules <file> | promql-check exprs < expressions")
		os.Exit(2)
	}
	p := parser.NewParser(parser.Options{})
	problems := 0
	switch os.Args[1] {
	case "rules":
		groups, errs := rulefmt.ParseFile(os.Args[2], false, model.UTF8Validation, p, slog.New(slog.DiscardHandler))
		for _, err := range errs {
			fmt.Println(err)
			problems++
		}
		if problems == 0 {
			rules := 0
			for _, g := range groups.Groups {
				rules += len(g.Rules)
			}
			fmt.Printf("%s: %d groups, %d rules: ok\n", os.Args[2], len(groups.Groups), rules)
		}
	case "exprs":
		scanner := bufio.NewScanner(os.Stdin)
		scanner.Buffer(make([]byte, 1<<20), 1<<20)
		line := 0
		for scanner.Scan() {
			line++
			if _, err := p.ParseExpr(scanner.Text()); err != nil {
				fmt.Printf("line %d: %v\n", line, err)
				problems++
			}
		}
		if problems == 0 {
			fmt.Printf("%d expressions: ok\n", line)
		}
	}
	if problems > 0 {
		os.Exit(1)
	}
}
