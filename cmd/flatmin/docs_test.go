package main

import (
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// Every code home docs/MATH.md names as `path/file.go: Name` (or
// `Type.Method`, and further names after commas) is declared in that file,
// so that the page stays true as code moves.
func TestMathHomesExist(t *testing.T) {
	root := filepath.Join("..", "..")
	doc, err := os.ReadFile(filepath.Join(root, "docs", "MATH.md"))
	if err != nil {
		t.Fatal(err)
	}
	ref := regexp.MustCompile("`([A-Za-z0-9_/]+\\.go): ([^`]+)`")
	ident := regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)?$`)
	decls := map[string]map[string]bool{}
	checked := 0
	for _, m := range ref.FindAllStringSubmatch(string(doc), -1) {
		file, names := m[1], m[2]
		if decls[file] == nil {
			d, err := declared(filepath.Join(root, file))
			if err != nil {
				t.Errorf("docs/MATH.md names %s: %v", file, err)
				decls[file] = map[string]bool{}
				continue
			}
			decls[file] = d
		}
		for _, name := range strings.FieldsFunc(names, func(r rune) bool { return strings.ContainsRune(" ,+()/=∘", r) }) {
			name = strings.TrimSuffix(name, ".")
			if !ident.MatchString(name) {
				continue
			}
			checked++
			if !decls[file][name] {
				t.Errorf("docs/MATH.md: %s has no %s", file, name)
			}
		}
	}
	if checked < 100 {
		t.Errorf("only %d names checked: has the page's form of reference changed?", checked)
	}
}

// declared returns the top-level names of a Go file: functions, types,
// constants, variables, and methods both as Name and as Type.Name.
func declared(path string) (map[string]bool, error) {
	f, err := parser.ParseFile(token.NewFileSet(), path, nil, parser.SkipObjectResolution)
	if err != nil {
		return nil, err
	}
	out := map[string]bool{}
	for _, d := range f.Decls {
		switch d := d.(type) {
		case *ast.FuncDecl:
			out[d.Name.Name] = true
			if d.Recv != nil && len(d.Recv.List) == 1 {
				typ := d.Recv.List[0].Type
				if star, ok := typ.(*ast.StarExpr); ok {
					typ = star.X
				}
				if id, ok := typ.(*ast.Ident); ok {
					out[id.Name+"."+d.Name.Name] = true
				}
			}
		case *ast.GenDecl:
			for _, s := range d.Specs {
				switch s := s.(type) {
				case *ast.TypeSpec:
					out[s.Name.Name] = true
				case *ast.ValueSpec:
					for _, n := range s.Names {
						out[n.Name] = true
					}
				}
			}
		}
	}
	return out, nil
}
