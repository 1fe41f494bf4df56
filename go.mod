module github.com/cpuwhy/cpuwhy

go 1.26.8
