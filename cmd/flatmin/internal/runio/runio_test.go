package runio

import (
	"os"
	"path/filepath"
	"testing"
)

func TestWriteFileAtomicReplacesWhole(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "f.json")
	if err := WriteFileAtomic(path, []byte("old")); err != nil {
		t.Fatal(err)
	}
	if err := WriteFileAtomic(path, []byte("new")); err != nil {
		t.Fatal(err)
	}
	got, _ := os.ReadFile(path)
	entries, _ := os.ReadDir(dir)
	if string(got) != "new" || len(entries) != 1 {
		t.Errorf("content %q, %d entries (temp files left?)", got, len(entries))
	}
}

func TestWriteFileAtomicKeepsOldOnFailure(t *testing.T) {
	if os.Geteuid() == 0 {
		t.Skip("root ignores directory permissions")
	}
	dir := t.TempDir()
	path := filepath.Join(dir, "f")
	_ = WriteFileAtomic(path, []byte("old"))
	os.Chmod(dir, 0o500)
	defer os.Chmod(dir, 0o700)
	if err := WriteFileAtomic(path, []byte("new")); err == nil {
		t.Fatal("write into a read-only directory succeeded")
	}
	if got, _ := os.ReadFile(path); string(got) != "old" {
		t.Errorf("old content lost: %q", got)
	}
}

func TestCSVLogDropsPartialLastLine(t *testing.T) {
	path := filepath.Join(t.TempDir(), "m.csv")
	l, err := CreateCSVLog(path, []string{"step", "loss"})
	if err != nil {
		t.Fatal(err)
	}
	l.Write([]string{"0", "1.5"})
	l.Write([]string{"1", "0.5"})
	l.Close()
	if _, err := CreateCSVLog(path, []string{"x"}); err == nil {
		t.Error("CreateCSVLog overwrote an existing log")
	}
	f, _ := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	f.WriteString("2,0.2") // cut short: no newline
	f.Close()
	header, rows, err := ReadCSVLog(path)
	if err != nil || len(header) != 2 || len(rows) != 2 || rows[1][1] != "0.5" {
		t.Errorf("header %v rows %v err %v", header, rows, err)
	}
}
