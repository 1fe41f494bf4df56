// Command cpuwhy tells why a process or a container is burning CPU.
package main

func main() {}
