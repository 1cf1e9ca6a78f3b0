module ddpm

go 1.26.8
